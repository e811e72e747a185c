using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;

namespace SigV4Lite.Bench;

/// <summary>
/// Issue 5's fan-out: 10,000 invocations at concurrency 64 against the emulator in another process (verification
/// off), by the library's three ways to consume a fan-out and by a plain unsigned HttpClient (the floor). One
/// operation is the whole fan-out; OperationsPerInvoke makes the figures per invocation. The machine's cores are
/// shared by this process and the emulator. Program.cs starts one emulator for the whole run and warms it up; run
/// alone (no <see cref="EmulatorProcess.SharedUrlVariable"/>), each benchmark process starts its own. Ten warm-up
/// iterations: with five, the library's first measured iterations were still up to twice as slow (tiered JIT).
/// </summary>
[MemoryDiagnoser]
[ThreadingDiagnoser]
[Config(typeof(Config))]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 10, iterationCount: 15)]
public class FanOutBenchmarks
{
    public const int Count = 10_000, Concurrency = 64;

    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(StatisticColumn.OperationsPerSecond);
    }

    private EmulatorProcess? _emulator; // ours, when no shared emulator was handed over
    private LambdaClient _client = null!;
    private HttpClient _floor = null!;
    private string _origin = null!;
    private readonly AwsFanOutOptions _fanOut = new() { MaxConcurrency = Concurrency };

    [GlobalSetup]
    public void Setup()
    {
        var endpoint = Environment.GetEnvironmentVariable(EmulatorProcess.SharedUrlVariable) is { Length: > 0 } shared
            ? new Uri(shared)
            : (_emulator = EmulatorProcess.Start()).Endpoint;
        _origin = endpoint.ToString();
        _client = FanOutInput.Client(endpoint);
        _floor = FanOutInput.FloorClient();
        // Both ways give the emulator's echo of the right call.
        var responses = _client.InvokeAllAsync(FanOutInput.Requests(200), _fanOut).GetAwaiter().GetResult();
        Check(Encoding.UTF8.GetString(responses[123].Payload.Span), "library");
        using var response = _floor.Send(new HttpRequestMessage(HttpMethod.Post, FanOutInput.FloorUrl(_origin, 123)) { Content = new ByteArrayContent(FanOutInput.Payload(123)) });
        Check(response.Content.ReadAsStringAsync().GetAwaiter().GetResult(), "floor");
    }

    private static void Check(string echo, string who)
    {
        const string expected = "{\"function\":\"hello-world-23\",\"payload\":{\"hello\": 123}}";
        if (echo != expected) throw new InvalidOperationException($"The {who}'s call 123 answered '{echo}', not '{expected}'.");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _floor.Dispose();
        _emulator?.Dispose();
    }

    /// <summary>The floor: the same POSTs, unsigned, 64 at a time, each response's bytes kept in input order.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Count, Description = "floor: HttpClient, Parallel.ForEachAsync")]
    public Task<int> Floor() => FanOutInput.FloorAsync(_floor, _origin, Count, Concurrency);

    /// <summary>All responses in input order, failing fast.</summary>
    [Benchmark(OperationsPerInvoke = Count, Description = "InvokeAllAsync")]
    public Task<int> InvokeAll() => FanOutInput.InvokeAllAsync(_client, Count, _fanOut);

    /// <summary>Every outcome in input order.</summary>
    [Benchmark(OperationsPerInvoke = Count, Description = "InvokeAllSettledAsync")]
    public Task<int> InvokeAllSettled() => FanOutInput.InvokeAllSettledAsync(_client, Count, _fanOut);

    /// <summary>The stream of outcomes as they complete; nothing kept.</summary>
    [Benchmark(OperationsPerInvoke = Count, Description = "InvokeEachAsync (stream)")]
    public Task<int> InvokeEach() => FanOutInput.InvokeEachAsync(_client, Count, _fanOut);
}
