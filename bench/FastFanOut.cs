using System.Net;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;

namespace SigV4Lite.Bench;

/// <summary>
/// Issue 10's fan-out: invocation i calls <c>hello-world-{i % 100}</c> with <c>{"hello": i}</c> (as issue 5's), against
/// the fast loopback mock (<see cref="LambdaMock"/>, a process of its own). Every way reads each answer's JSON as a
/// caller would: status checked, no function error, the body's bytes, and one pass of <see cref="Utf8JsonReader"/>
/// over them to take <c>statusCode</c> (<see cref="ReadAnswer"/>). The floors read inside each call; InvokeAllAsync's
/// caller can only read once the list comes back, InvokeEachAsync's as each outcome arrives.
/// </summary>
internal static class FastFanOut
{
    /// <summary>The two shapes the issue names: 2,000 calls at 64 in flight, 10,000 at 256.</summary>
    public static readonly (int Count, int Concurrency)[] Shapes = [(2_000, 64), (10_000, 256)];

    /// <summary>What a caller does with an answer: one pass over its JSON, the statusCode taken (200).</summary>
    public static int ReadAnswer(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        int status = 0;
        while (reader.Read())
            if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("statusCode"u8) && reader.Read())
                status = reader.GetInt32();
        return status == 200 ? status : throw new InvalidOperationException($"An answer's statusCode was {status}, not 200.");
    }

    /// <summary>The X-Amz-Date and Authorization of a real signature of the request shape, computed once: what the signed
    /// floor sends with every call (the mock checks nothing), so that its bytes on the wire are the library's.</summary>
    public static (string AmzDate, string Authorization) FixedSignature(Uri endpoint)
    {
        string path = new Uri(FanOutInput.FloorUrl(endpoint.ToString(), 0)).AbsolutePath;
        var signature = SigV4.Sign("POST", path, "", [new("Host", endpoint.Authority)],
            SigV4.HashPayload(FanOutInput.Payload(0)), DateTimeOffset.UtcNow, FanOutInput.Credentials(), new SigV4Options("lambda", "us-east-1"));
        return (signature.AmzDate, signature.Authorization!);
    }

    /// <summary>
    /// The floor: the same POSTs, <paramref name="concurrency"/> at a time (Parallel.ForEachAsync over a shared
    /// handler), each answer read and its body kept in input order; unsigned, or (<paramref name="signature"/>) with the
    /// signed request's headers and a fixed precomputed Authorization.
    /// </summary>
    public static async Task<int> FloorAsync(HttpClient http, string origin, int count, int concurrency, (string AmzDate, string Authorization)? signature)
    {
        var bodies = new byte[count][];
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, cancellationToken) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, FanOutInput.FloorUrl(origin, i)) { Content = new ByteArrayContent(FanOutInput.Payload(i)) };
            if (signature is { } signed)
            {
                request.Headers.TryAddWithoutValidation("X-Amz-Date", signed.AmzDate);
                request.Headers.TryAddWithoutValidation("Authorization", signed.Authorization);
            }
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK || response.Headers.NonValidated.Contains("X-Amz-Function-Error"))
                throw new InvalidOperationException($"Call {i} answered {(int)response.StatusCode} or with a function error.");
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            ReadAnswer(body);
            bodies[i] = body;
        }).ConfigureAwait(false);
        return bodies.Length;
    }

    /// <summary>InvokeAllAsync, then each answer read, as its caller can only do once the list is back.</summary>
    public static async Task<int> InvokeAllAsync(LambdaClient client, int count, int concurrency)
    {
        var responses = await client.InvokeAllAsync(FanOutInput.Requests(count), new AwsFanOutOptions { MaxConcurrency = concurrency }).ConfigureAwait(false);
        int read = 0;
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        foreach (var response in responses) { ReadAnswer(response.Payload.Span); read++; }
        Interlocked.Add(ref ReadingAfterTicks, System.Diagnostics.Stopwatch.GetTimestamp() - started);
        return Counted(read, count);
    }

    /// <summary>InvokeAsync per call under the floor's own Parallel.ForEachAsync, each answer read inside the call: the
    /// pipeline without the fan-out engine, which tells the engine's cost from the pipeline's.</summary>
    public static async Task<int> InvokeAsyncInParallelForEach(LambdaClient client, int count, int concurrency)
    {
        var payloads = new ReadOnlyMemory<byte>[count];
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, cancellationToken) =>
        {
            var response = await client.InvokeAsync(new SigV4Lite.LambdaRequest(FanOutInput.FunctionName(i), FanOutInput.Payload(i)), cancellationToken).ConfigureAwait(false);
            ReadAnswer(response.Payload.Span);
            payloads[i] = response.Payload;
        }).ConfigureAwait(false);
        return payloads.Length;
    }

    /// <summary>InvokeEachAsync, each answer read as it arrives and dropped.</summary>
    public static async Task<int> InvokeEachAsync(LambdaClient client, int count, int concurrency)
    {
        int read = 0;
        await foreach (var outcome in client.InvokeEachAsync(FanOutInput.Requests(count), new AwsFanOutOptions { MaxConcurrency = concurrency }).ConfigureAwait(false))
        {
            ReadAnswer(outcome.GetResponseOrThrow().Payload.Span);
            read++;
        }
        return Counted(read, count);
    }

    /// <summary>The Stopwatch ticks InvokeAllAsync's caller has spent reading the answers after the list came back
    /// (the profile reports it: the floors read inside each call, overlapping the calls).</summary>
    public static long ReadingAfterTicks;

    private static int Counted(int got, int count) =>
        got == count ? got : throw new InvalidOperationException($"{got} of {count} invocations came back.");

    /// <summary>The ways, by name, for the interleaved run and the profile: the two floors, the two fan-outs, and the
    /// pipeline's single call under the floor's own fan-out.</summary>
    public static (string Name, Func<Task<int>> Run)[] Methods(Uri endpoint, LambdaClient client, HttpClient http, int count, int concurrency)
    {
        string origin = endpoint.ToString();
        var signature = FixedSignature(endpoint);
        return
        [
            ("floor: HttpClient, unsigned", () => FloorAsync(http, origin, count, concurrency, null)),
            ("floor: HttpClient, fixed signature headers", () => FloorAsync(http, origin, count, concurrency, signature)),
            ("InvokeAllAsync", () => InvokeAllAsync(client, count, concurrency)),
            ("InvokeEachAsync", () => InvokeEachAsync(client, count, concurrency)),
            ("InvokeAsync in Parallel.ForEachAsync", () => InvokeAsyncInParallelForEach(client, count, concurrency)),
        ];
    }
}

/// <summary>
/// Issue 10's fan-out under BenchmarkDotNet: 2,000 calls at 64 in flight and 10,000 at 256 against the fast mock, by
/// the unsigned floor (baseline), the signed-bytes floor, InvokeAllAsync and InvokeEachAsync. One operation is one
/// whole fan-out (Mean is per fan-out; divide by the count for per call). Program.cs starts one mock for the run.
/// </summary>
[MemoryDiagnoser]
[ThreadingDiagnoser]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 15, iterationCount: 25)]
public class FastFanOutBenchmarks
{
    [Params("2000@64", "10000@256")]
    public string Shape { get; set; } = "2000@64";

    private LambdaMockProcess? _mock; // ours, when no shared mock was handed over
    private LambdaClient _client = null!;
    private HttpClient _http = null!;
    private Uri _endpoint = null!;
    private (string, string) _signature;
    private int _count, _concurrency;

    [GlobalSetup]
    public void Setup()
    {
        _endpoint = Environment.GetEnvironmentVariable(LambdaMockProcess.SharedUrlVariable) is { Length: > 0 } shared
            ? new Uri(shared)
            : (_mock = LambdaMockProcess.Start()).Endpoint;
        var parts = Shape.Split('@');
        (_count, _concurrency) = (int.Parse(parts[0]), int.Parse(parts[1]));
        _client = FanOutInput.Client(_endpoint);
        _http = FanOutInput.FloorClient();
        _signature = FastFanOut.FixedSignature(_endpoint);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _http.Dispose();
        _mock?.Dispose();
    }

    [Benchmark(Baseline = true, Description = "floor: HttpClient, unsigned")]
    public Task<int> Floor() => FastFanOut.FloorAsync(_http, _endpoint.ToString(), _count, _concurrency, null);

    [Benchmark(Description = "floor: HttpClient, fixed signature headers")]
    public Task<int> SignedFloor() => FastFanOut.FloorAsync(_http, _endpoint.ToString(), _count, _concurrency, _signature);

    [Benchmark(Description = "InvokeAllAsync")]
    public Task<int> InvokeAll() => FastFanOut.InvokeAllAsync(_client, _count, _concurrency);

    [Benchmark(Description = "InvokeEachAsync")]
    public Task<int> InvokeEach() => FastFanOut.InvokeEachAsync(_client, _count, _concurrency);
}
