using System.Net;
using System.Text;
using System.Text.Json;
using SigV4Lite.Emulator;

namespace SigV4Lite.Tests;

/// <summary>What the emulator tests share: a signed client, invocation requests, and the shape of AWS errors.</summary>
internal static class EmulatorTestSupport
{
    public const string ErrorTypeSuffix = ":http://internal.amazon.com/coral/com.amazonaws.lambda/";
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    public static AwsCredentials ExampleCredentials { get; } = new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");

    /// <summary>An HttpClient that signs for lambda in <paramref name="region"/>, based at the emulator's endpoint.</summary>
    public static HttpClient SignedClient(LambdaEmulator emulator, AwsCredentials? credentials = null, string region = "us-east-1") =>
        new(new SigV4Handler(credentials ?? ExampleCredentials, new SigV4Options("lambda", region))) { BaseAddress = emulator.Endpoint };

    public static HttpClient UnsignedClient(LambdaEmulator emulator) => new() { BaseAddress = emulator.Endpoint };

    /// <summary>The Invoke path with the function name percent-encoded as one segment, as the AWS SDKs send it.</summary>
    public static string InvokePath(string functionName, string? qualifier = null) =>
        "2015-03-31/functions/" + Uri.EscapeDataString(functionName) + "/invocations"
        + (qualifier is null ? "" : "?Qualifier=" + Uri.EscapeDataString(qualifier));

    /// <summary>The InvokeWithResponseStream path, the function name encoded as for Invoke.</summary>
    public static string StreamPath(string functionName, string? qualifier = null) =>
        "2021-11-15/functions/" + Uri.EscapeDataString(functionName) + "/response-streaming-invocations"
        + (qualifier is null ? "" : "?Qualifier=" + Uri.EscapeDataString(qualifier));

    public static HttpRequestMessage Invoke(string functionName, string? payload = "{}", string? invocationType = null,
        string? qualifier = null, string? logType = null, string? clientContext = null) =>
        Request(InvokePath(functionName, qualifier), payload, invocationType, logType, clientContext);

    public static HttpRequestMessage InvokeWithResponseStream(string functionName, string? payload = "{}", string? invocationType = null,
        string? qualifier = null, string? logType = null, string? clientContext = null) =>
        Request(StreamPath(functionName, qualifier), payload, invocationType, logType, clientContext);

    private static HttpRequestMessage Request(string path, string? payload, string? invocationType, string? logType, string? clientContext)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path);
        if (payload is not null) request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(payload));
        if (invocationType is not null) request.Headers.Add("X-Amz-Invocation-Type", invocationType);
        if (logType is not null) request.Headers.Add("X-Amz-Log-Type", logType);
        if (clientContext is not null) request.Headers.Add("X-Amz-Client-Context", clientContext);
        return request;
    }

    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values)
        : response.Content.Headers.TryGetValues(name, out values) ? string.Join(",", values) : null;

    /// <summary>Asserts an AWS JSON-protocol error: status, x-amzn-ErrorType with Lambda's suffix, a request id, and a
    /// body of exactly {"Type", message field[, "Reason"]}. Returns the message.</summary>
    public static async Task<string> AssertAwsErrorAsync(HttpResponseMessage response, HttpStatusCode status, string errorType,
        string messageField = "message", string? reason = null)
    {
        string text = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(status), text);
        Assert.That(Header(response, "x-amzn-ErrorType"), Is.EqualTo(errorType + ErrorTypeSuffix));
        Assert.That(Guid.TryParse(Header(response, "x-amzn-RequestId"), out _), Is.True, "x-amzn-RequestId is a request id");
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
        using var json = JsonDocument.Parse(text);
        var body = json.RootElement;
        var expectedFields = new List<string> { "Type", messageField };
        if (reason is not null) expectedFields.Add("Reason");
        Assert.That(body.EnumerateObject().Select(p => p.Name), Is.EquivalentTo(expectedFields), text);
        Assert.That(body.GetProperty("Type").GetString(), Is.EqualTo((int)status >= 500 ? "Server" : "User"));
        if (reason is not null) Assert.That(body.GetProperty("Reason").GetString(), Is.EqualTo(reason));
        string message = body.GetProperty(messageField).GetString()!;
        Assert.That(message, Is.Not.Empty);
        return message;
    }

    public static async Task<JsonElement> JsonBodyAsync(HttpResponseMessage response)
    {
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.Clone();
    }

    /// <summary>A clock set apart from the real one, to provoke clock skew.</summary>
    public sealed class ShiftedClock(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + offset;
    }

    /// <summary>A function that records its invocations and answers with <paramref name="answer"/> (the echo when null).</summary>
    public sealed class RecordingFunction(string? answer = null)
    {
        private readonly List<LambdaInvocation> _calls = [];

        public IReadOnlyList<LambdaInvocation> Calls { get { lock (_calls) return _calls.ToArray(); } }

        public LambdaInvocation Last => Calls[^1];

        public ValueTask<byte[]> Handle(LambdaInvocation invocation, CancellationToken cancellationToken)
        {
            lock (_calls) _calls.Add(invocation);
            return answer is null ? LambdaEmulator.Echo(invocation, cancellationToken) : new(Encoding.UTF8.GetBytes(answer));
        }
    }
}

/// <summary>A fixture whose tests share one in-process emulator and a client that signs for it.</summary>
public abstract class SignedEmulatorFixture
{
    protected LambdaEmulator Emulator { get; private set; } = null!;
    protected HttpClient Client { get; private set; } = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        Emulator = await LambdaEmulator.StartAsync();
        Client = EmulatorTestSupport.SignedClient(Emulator);
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        Client.Dispose();
        await Emulator.DisposeAsync();
    }
}
