using System.Diagnostics;
using System.Globalization;

namespace SigV4Lite.Bench;

/// <summary>
/// <c>--fanout-memory</c>: peak memory of a streaming fan-out (InvokeEachAsync over a lazily generated input) for a
/// small and a large number of invocations, which issue 5 wants the same. BenchmarkDotNet does not measure peak
/// memory, so each run is a process of its own (this program again, <c>--fanout-memory-run</c>) whose peaks owe
/// nothing to the others; all talk to one emulator process. InvokeAllSettledAsync, which keeps every outcome,
/// runs beside it to show that the measurement sees a fan-out whose memory does grow.
/// </summary>
internal static class FanOutMemory
{
    private const int Concurrency = FanOutBenchmarks.Concurrency, WarmUp = 1_000;

    private static readonly (string Mode, long Count)[] Runs =
    [
        ("each", 1_000), ("each", 10_000), ("each", 100_000),
        ("settled", 1_000), ("settled", 100_000),
    ];

    // Issue 10's: against the fast mock at 256 in flight, each answer's JSON read; the collect-all floors beside
    // InvokeAllAsync; a longer warm-up, so that tiered compilation has done its work before the peak is reset. The
    // signed-bytes floor computes one real signature first: it has loaded .NET's cryptography (System.Security.Cryptography
    // and OpenSSL, about 10 MB resident), as a client that signs must and as any HTTPS client does; the unsigned floor
    // over plain HTTP never loads it.
    private static readonly (string Mode, long Count)[] FastRuns =
    [
        ("fast-each", 10_000), ("fast-each", 100_000),
        ("floor", 10_000), ("signed-floor", 10_000), ("all", 10_000),
        ("floor", 100_000), ("signed-floor", 100_000), ("all", 100_000),
    ];

    private const int FastConcurrency = 256, FastWarmUp = 60_000;

    /// <summary><c>--fast-fanout-memory</c>: issue 10's peaks, each run a process of its own, against one mock process.</summary>
    public static int RunFast(TextWriter output)
    {
        using var mock = LambdaMockProcess.Start();
        output.WriteLine($"Lambda mock: pid {mock.ProcessId}, {mock.Endpoint}; each run: a new process, {FastWarmUp:N0} calls of its own way to warm up, then the run; {FastConcurrency} in flight");
        output.WriteLine();
        return RunAll(output, FastRuns, mock.Endpoint);
    }

    // One process per run, one table row each.
    private static int RunAll(TextWriter output, (string Mode, long Count)[] runs, Uri endpoint)
    {
        output.WriteLine("| mode | invocations | time | invocations/s | most live (full GC at each tenth) | peak GC heap (sampled) | peak GC committed | peak working set | pool threads | GCs (gen0/1/2) | retained after | most read ahead |");
        output.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (mode, count) in runs)
        {
            var result = RunChild(mode, count, endpoint);
            if (result is null) return 1;
            output.WriteLine(result);
            output.Flush();
        }
        return 0;
    }

    public static int Run(TextWriter output)
    {
        using var emulator = EmulatorProcess.Start();
        output.WriteLine($"emulator: pid {emulator.ProcessId}, {emulator.Endpoint}; each run: a new process, {WarmUp:N0} invocations to warm up, then the run; concurrency {Concurrency}");
        output.WriteLine();
        return RunAll(output, Runs, emulator.Endpoint);
    }

    private static string? RunChild(string mode, long count, Uri endpoint)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
        // Under `dotnet SigV4Lite.Bench.dll` the process is dotnet itself: give it the program again.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") start.ArgumentList.Add(typeof(FanOutMemory).Assembly.Location);
        foreach (string arg in new[] { "--fanout-memory-run", mode, count.ToString(CultureInfo.InvariantCulture), endpoint.ToString() })
            start.ArgumentList.Add(arg);
        using var child = Process.Start(start)!;
        string text = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        string? line = text.Split('\n').FirstOrDefault(l => l.StartsWith('|'));
        if (child.ExitCode != 0 || line is null)
        {
            Console.Error.WriteLine($"run {mode} {count} failed (exit code {child.ExitCode}): {text}");
            return null;
        }
        return line;
    }

    /// <summary>One measured run, in its own process; prints one table row.</summary>
    public static int RunOne(string mode, long count, Uri endpoint, TextWriter output)
    {
        using var client = FanOutInput.Client(endpoint);
        using var http = FanOutInput.FloorClient();
        bool fast = mode is "fast-each" or "all" or "floor" or "signed-floor";
        var options = new AwsFanOutOptions { MaxConcurrency = fast ? FastConcurrency : Concurrency };
        // Warm up (JIT, connections), then start the measurement from a collected heap.
        if (fast) Invoke(client, http, endpoint, mode, FastWarmUp, options, new Probe(0));
        else Invoke(client, "each", WarmUp, options, new Probe(0));
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long before = GC.GetTotalMemory(forceFullCollection: true);
        bool hwmReset = ResetPeakWorkingSet();
        int[] gcs = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];

        // The run as a user would make it, with the heap sampled from another thread.
        var probe = new Probe(0);
        var sampler = new Sampler();
        var clock = Stopwatch.StartNew();
        if (fast) Invoke(client, http, endpoint, mode, count, options, probe);
        else Invoke(client, mode, count, options, probe);
        var elapsed = clock.Elapsed;
        sampler.Stop();
        long peakWorkingSet = hwmReset ? ReadPeakWorkingSet() : Process.GetCurrentProcess().PeakWorkingSet64;
        string collections = $"{GC.CollectionCount(0) - gcs[0]}/{GC.CollectionCount(1) - gcs[1]}/{GC.CollectionCount(2) - gcs[2]}";
        long retained = GC.GetTotalMemory(forceFullCollection: true) - before;

        // The same run again, with a full collection at every tenth of the input: what is really live along the way.
        var checkpoints = new Probe(Math.Max(1, count / 10));
        if (fast) Invoke(client, http, endpoint, mode, count, options, checkpoints);
        else Invoke(client, mode, count, options, checkpoints);

        string name = mode switch
        {
            "each" => "InvokeEachAsync (stream)",
            "fast-each" => "InvokeEachAsync (stream, JSON read)",
            "all" => "InvokeAllAsync (keeps all, JSON read after)",
            "floor" => "floor: HttpClient, keeps all bodies, JSON read",
            "signed-floor" => "floor with fixed signature headers (crypto loaded), keeps all bodies, JSON read",
            _ => "InvokeAllSettledAsync (keeps all)",
        };
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {count:N0} | {elapsed.TotalSeconds:F2} s | {count / elapsed.TotalSeconds:N0} | {Mb(checkpoints.MostLive - before)} | {Mb(sampler.PeakTotalMemory)} | {Mb(sampler.PeakCommitted)} | {Mb(peakWorkingSet)}{(hwmReset ? "" : " (process)")} | {sampler.PeakThreads} | {collections} | {Mb(retained)} | {(mode is "each" or "fast-each" ? probe.MostAhead.ToString(CultureInfo.InvariantCulture) : "n/a")} |"));
        if (Environment.GetEnvironmentVariable("FANOUT_MEMORY_TRACE") == "1")
        {
            Console.Error.WriteLine($"{name} {count}: live at each tenth: {string.Join(", ", checkpoints.Live.Select(l => Mb(l - before)))}");
            Console.Error.WriteLine($"{name} {count}: resident set every 0.5 s: {string.Join(", ", sampler.ResidentSet.Select(Mb))}");
        }
        return 0;
    }

    private static void Invoke(LambdaClient client, string mode, long count, AwsFanOutOptions options, Probe probe)
    {
        long succeeded = mode switch
        {
            "each" => Consume(client.InvokeEachAsync(probe.Requests(count), options), probe).GetAwaiter().GetResult(),
            "settled" => client.InvokeAllSettledAsync(probe.Requests(count), options).GetAwaiter().GetResult().Count(o => o.Succeeded),
            _ => throw new ArgumentException($"Unknown mode '{mode}'; give each or settled.", nameof(mode)),
        };
        if (succeeded != count) throw new InvalidOperationException($"{succeeded} of {count} invocations succeeded.");
    }

    // Issue 10's ways (FastFanOut): the streaming consumer reads each answer's JSON; the floor's input is not the
    // library's lazily made requests, so it is counted as it goes (the checkpoints) by the same probe.
    private static void Invoke(LambdaClient client, HttpClient http, Uri endpoint, string mode, long count, AwsFanOutOptions options, Probe probe)
    {
        int n = checked((int)count);
        switch (mode)
        {
            case "fast-each":
                Consume(client.InvokeEachAsync(probe.Requests(count), options), probe, readJson: true).GetAwaiter().GetResult();
                break;
            case "all":
                var responses = client.InvokeAllAsync(probe.Requests(count), options).GetAwaiter().GetResult();
                foreach (var response in responses) FastFanOut.ReadAnswer(response.Payload.Span);
                if (responses.Count != n) throw new InvalidOperationException($"{responses.Count} of {count} calls came back.");
                break;
            case "floor" or "signed-floor":
                foreach (var _ in probe.Requests(0)) { } // the probe sees no input: the floor makes its own
                var signature = mode == "signed-floor" ? FastFanOut.FixedSignature(endpoint) : ((string, string)?)null;
                FastFanOut.FloorAsync(http, endpoint.ToString(), n, options.MaxConcurrency, signature).GetAwaiter().GetResult();
                break;
            default:
                throw new ArgumentException($"Unknown mode '{mode}'.", nameof(mode));
        }
    }

    private static async Task<long> Consume(IAsyncEnumerable<AwsOutcome<SigV4Lite.LambdaRequest, LambdaResponse>> outcomes, Probe probe, bool readJson = false)
    {
        long succeeded = 0;
        await foreach (var outcome in outcomes.ConfigureAwait(false))
        {
            probe.Consumed();
            if (outcome.Succeeded) succeeded++;
            if (readJson) FastFanOut.ReadAnswer(outcome.GetResponseOrThrow().Payload.Span);
        }
        return succeeded;
    }

    private static string Mb(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F1", CultureInfo.InvariantCulture) + " MB";

    // Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM), so that the warm-up's peak is not counted.
    private static bool ResetPeakWorkingSet()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long ReadPeakWorkingSet() => ReadStatus("VmHWM:");

    // A size from /proc/self/status ("VmHWM:     12345 kB"), in bytes.
    private static long ReadStatus(string field)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line[field.Length..].Replace("kB", "").Trim(), CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"/proc/self/status has no {field}.");
    }

    /// <summary>
    /// The input, generated lazily; how far it runs ahead of the outcomes consumed; and, every <c>checkpoint</c>
    /// requests (0: never), the live heap after a full collection.
    /// </summary>
    private sealed class Probe(long checkpoint)
    {
        private long _generated, _consumed;

        public long MostAhead { get; private set; }
        public long MostLive { get; private set; }
        public List<long> Live { get; } = [];

        // Called by the library's workers one at a time (under its input lock).
        public IEnumerable<SigV4Lite.LambdaRequest> Requests(long count)
        {
            foreach (var request in FanOutInput.Requests(count))
            {
                long generated = Interlocked.Increment(ref _generated);
                MostAhead = Math.Max(MostAhead, generated - Volatile.Read(ref _consumed));
                if (checkpoint > 0 && generated % checkpoint == 0)
                {
                    long live = GC.GetTotalMemory(forceFullCollection: true);
                    Live.Add(live);
                    MostLive = Math.Max(MostLive, live);
                }
                yield return request;
            }
        }

        public void Consumed() => Interlocked.Increment(ref _consumed);
    }

    /// <summary>Samples the GC heap every few milliseconds on a thread of its own.</summary>
    private sealed class Sampler
    {
        private readonly Thread _thread;
        private volatile bool _stop;

        public Sampler()
        {
            _thread = new Thread(Loop) { IsBackground = true, Name = "memory sampler" };
            _thread.Start();
        }

        private readonly bool _trace = Environment.GetEnvironmentVariable("FANOUT_MEMORY_TRACE") == "1";
        private long _samples;

        /// <summary>The resident set size every half second, with FANOUT_MEMORY_TRACE=1.</summary>
        public List<long> ResidentSet { get; } = [];

        public long PeakTotalMemory { get; private set; }
        public long PeakCommitted { get; private set; }
        public int PeakThreads { get; private set; }

        private void Loop()
        {
            while (!_stop)
            {
                Sample();
                Thread.Sleep(2);
            }
            Sample();
        }

        private void Sample()
        {
            PeakTotalMemory = Math.Max(PeakTotalMemory, GC.GetTotalMemory(forceFullCollection: false));
            PeakCommitted = Math.Max(PeakCommitted, GC.GetGCMemoryInfo().TotalCommittedBytes);
            PeakThreads = Math.Max(PeakThreads, ThreadPool.ThreadCount);
            if (_trace && _samples++ % 250 == 0) ResidentSet.Add(ReadStatus("VmRSS:"));
        }

        public void Stop()
        {
            _stop = true;
            _thread.Join();
        }
    }
}
