using System.Net;
using System.Text;
using System.Text.Json.Serialization;
using SigV4Lite.Emulator;

namespace SigV4Lite.Tests;

/// <summary>What the Lambda client tests share: a client for an emulator whose retry delays are recorded, not slept.</summary>
internal static class LambdaTestSupport
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    public static LambdaClient NewClient(LambdaEmulator emulator, RecordedDelays? delays = null, int maxAttempts = 3,
        TimeSpan? timeout = null, AwsCredentials? credentials = null) =>
        new(new AwsClientOptions
        {
            Endpoint = emulator.Endpoint,
            Region = emulator.Options.Region,
            Credentials = credentials ?? EmulatorTestSupport.ExampleCredentials,
            MaxAttempts = maxAttempts,
            Timeout = timeout ?? TimeSpan.FromSeconds(30),
            Clock = delays ?? new RecordedDelays(),
        });

    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>Waits until <paramref name="condition"/> holds, failing after <see cref="Patience"/>.</summary>
    public static async Task EventuallyAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"Timed out waiting until {what}.");
            await Task.Delay(10);
        }
    }
}

/// <summary>
/// A clock for the client whose waits (Task.Delay on it: the retry backoff) are recorded and end at once. Its other
/// timers (the attempt timeouts of CancellationTokenSource) run in real time. It tells the time of <paramref name="time"/>
/// (the system's by default).
/// </summary>
internal sealed class RecordedDelays(TimeProvider? time = null) : TimeProvider
{
    private readonly List<TimeSpan> _delays = new();

    public IReadOnlyList<TimeSpan> Delays
    {
        get { lock (_delays) return _delays.ToArray(); }
    }

    public override DateTimeOffset GetUtcNow() => (time ?? System).GetUtcNow();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        // Task.Delay's timer carries the delay's task as its state; a CancellationTokenSource's carries the source.
        if (state is not Task) return base.CreateTimer(callback, state, dueTime, period);
        lock (_delays) _delays.Add(dueTime);
        ThreadPool.UnsafeQueueUserWorkItem(s => callback(s), state, preferLocal: false);
        return new EndedTimer();
    }

    private sealed class EndedTimer : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => false;

        public void Dispose() { }

        public ValueTask DisposeAsync() => default;
    }
}

/// <summary>A clock that runs ahead of (or behind) the real one by a fixed offset.</summary>
internal sealed class OffsetClock(TimeSpan offset) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + offset;
}

/// <summary>An in-process HTTP answer for responses the emulator does not make (other
/// error body shapes). Records each request's URI and headers.</summary>
internal sealed class StubHandler(Func<HttpRequestMessage, HttpResponseMessage> answer) : HttpMessageHandler
{
    public List<string> Uris { get; } = new();
    public List<Dictionary<string, string>> Headers { get; } = new();

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        lock (Uris)
        {
            Uris.Add(request.RequestUri!.OriginalString);
            Headers.Add(request.Headers.ToDictionary(h => h.Key, h => string.Join(",", h.Value), StringComparer.OrdinalIgnoreCase));
        }
        var response = answer(request);
        response.RequestMessage = request;
        return Task.FromResult(response);
    }

    public static HttpResponseMessage Json(HttpStatusCode status, string body, params (string Name, string Value)[] headers)
    {
        var response = new HttpResponseMessage(status) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)) };
        foreach (var (name, value) in headers) response.Headers.TryAddWithoutValidation(name, value);
        return response;
    }

    public static LambdaClient Client(StubHandler handler, int maxAttempts = 1) =>
        new(new AwsClientOptions
        {
            Endpoint = new Uri("https://lambda.us-east-1.amazonaws.com"),
            Region = "us-east-1",
            Credentials = EmulatorTestSupport.ExampleCredentials,
            HttpHandler = handler,
            MaxAttempts = maxAttempts,
            Clock = new RecordedDelays(),
        });
}

internal sealed record HelloEvent([property: JsonPropertyName("hello")] int Hello);

internal sealed record EchoAnswer([property: JsonPropertyName("function")] string Function, [property: JsonPropertyName("payload")] HelloEvent Payload);

[JsonSerializable(typeof(HelloEvent))]
[JsonSerializable(typeof(EchoAnswer))]
internal sealed partial class LambdaTestJson : JsonSerializerContext;

/// <summary>A fixture whose tests share one in-process emulator (with "echo" registered); faults and counters are
/// cleared before each test. Subclasses register more functions in <see cref="AddFunctions"/>.</summary>
public abstract class EmulatorFixture
{
    protected LambdaEmulator Emulator { get; private set; } = null!;

    [OneTimeSetUp]
    public async Task StartEmulatorAsync()
    {
        Emulator = await LambdaEmulator.StartAsync();
        Emulator.AddFunction("echo", LambdaEmulator.Echo);
        AddFunctions(Emulator);
    }

    protected virtual void AddFunctions(LambdaEmulator emulator) { }

    [OneTimeTearDown]
    public async Task StopEmulatorAsync() => await Emulator.DisposeAsync();

    [SetUp]
    public void ClearFaultsAndCounters()
    {
        Emulator.Faults.Clear();
        Emulator.Counters.Reset();
    }
}

/// <summary>Streaming functions and chunks the response-stream tests share.</summary>
internal static class StreamingFunctions
{
    /// <summary>Chunk i: its index, then a letter and a length of its own, so that a chunk out of place shows.</summary>
    public static byte[] Chunk(int i) => Encoding.UTF8.GetBytes($"chunk {i} " + new string((char)('a' + i % 26), i % 97));

    /// <summary>Writes <c>{payload}:{k};</c> for k = 0 to 4, yielding between writes, so that many streams at once interleave.</summary>
    public static async ValueTask FiveTaggedChunks(LambdaInvocation invocation, LambdaResponseStream response, CancellationToken cancellationToken)
    {
        string id = Encoding.UTF8.GetString(invocation.Payload.Span);
        for (int k = 0; k < 5; k++)
        {
            await response.WriteAsync($"{id}:{k};", cancellationToken);
            await Task.Yield();
        }
    }

    /// <summary>Logs "about to fail", writes "one" and "two", then fails: a handled error Runtime.StreamError, "upstream closed".</summary>
    public static async ValueTask FailsAfterTwoChunks(LambdaInvocation invocation, LambdaResponseStream response, CancellationToken cancellationToken)
    {
        invocation.Log("about to fail");
        await response.WriteAsync("one", cancellationToken);
        await response.WriteAsync("two", cancellationToken);
        throw new LambdaHandledErrorException("Runtime.StreamError", "upstream closed");
    }

    /// <summary>What <see cref="FiveTaggedChunks"/> writes for the payload <paramref name="id"/>.</summary>
    public static string FiveTaggedChunksText(int id) => string.Concat(Enumerable.Range(0, 5).Select(k => $"{id}:{k};"));
}

/// <summary>A streaming function that writes its chunks, then waits until its caller goes away (or the emulator
/// stops): <see cref="Cancelled"/> completes when its token fires.</summary>
internal sealed class WaitingStreamFunction(params string[] chunks)
{
    private readonly TaskCompletionSource _cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Cancelled => _cancelled.Task;

    public async ValueTask Handle(LambdaInvocation invocation, LambdaResponseStream response, CancellationToken cancellationToken)
    {
        cancellationToken.Register(() => _cancelled.TrySetResult());
        foreach (string chunk in chunks) await response.WriteAsync(chunk, cancellationToken);
        await Task.Delay(Timeout.Infinite, cancellationToken);
    }
}
