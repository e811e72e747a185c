using System.Diagnostics;
using System.Globalization;

namespace SigV4Lite.Bench;

/// <summary>
/// <c>--fanout-interleaved [rounds]</c>: the fan-out benchmarks in turn, round after round, in one process against
/// one warm emulator process. Other work on the machine slows whole rounds, floor and library alike, so the ratio
/// of each round's times, and its median over the rounds, holds better than BenchmarkDotNet's means do on a shared
/// machine. Allocation is all threads' (<see cref="GC.GetTotalAllocatedBytes(bool)"/>), per invocation.
/// </summary>
internal static class FanOutInterleaved
{
    private const int Count = FanOutBenchmarks.Count, Concurrency = FanOutBenchmarks.Concurrency;

    public static int Run(TextWriter output, int rounds)
    {
        using var emulator = EmulatorProcess.StartShared(output);
        using var client = FanOutInput.Client(emulator.Endpoint);
        using var http = FanOutInput.FloorClient();
        string origin = emulator.Endpoint.ToString();
        var fanOut = new AwsFanOutOptions { MaxConcurrency = Concurrency };
        (string Name, Func<Task<int>> Run)[] methods =
        [
            ("floor: HttpClient, Parallel.ForEachAsync", () => FanOutInput.FloorAsync(http, origin, Count, Concurrency)),
            ("InvokeAllAsync", () => FanOutInput.InvokeAllAsync(client, Count, fanOut)),
            ("InvokeAllSettledAsync", () => FanOutInput.InvokeAllSettledAsync(client, Count, fanOut)),
            ("InvokeEachAsync (stream)", () => FanOutInput.InvokeEachAsync(client, Count, fanOut)),
        ];
        string loadBefore = LoadAverage();
        var (times, bytes, clientCpu, emulatorCpu, workItems) = MeasureRounds(methods, rounds, emulator.ProcessId, warmUpRounds: 1);

        output.WriteLine($"{rounds} rounds of {Count:N0} invocations per method, concurrency {Concurrency}; load average before: {loadBefore}");
        output.WriteLine();
        output.WriteLine("| Method | fastest round | invocations/s (fastest) | median round | invocations/s (median) | throughput vs floor (median of per-round ratios) | allocated per invocation | CPU per invocation: this process | the emulator | thread-pool work items per invocation |");
        output.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (int m = 0; m < methods.Length; m++)
        {
            double fastest = times[m].Min(), median = Median(times[m]);
            double ratio = Median(times[0].Zip(times[m], (floor, t) => floor / t).ToList());
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {methods[m].Name} | {fastest:F3} s | {Count / fastest:N0} | {median:F3} s | {Count / median:N0} | {ratio:F2}x | {bytes[m] / (double)rounds / Count:N0} B | {Micro(clientCpu[m], rounds)} | {Micro(emulatorCpu[m], rounds)} | {workItems[m] / (double)rounds / Count:F2} |"));
        }
        output.WriteLine();
        output.WriteLine($"load average after: {LoadAverage()}");
        return 0;
    }

    /// <summary>
    /// The ways in turn, round after round (a different one first each round), after the warm-up rounds: each
    /// round's time, and per way the bytes allocated (all threads), this process's and the server's CPU and the
    /// thread-pool work items, summed over the rounds.
    /// </summary>
    internal static (List<double>[] Times, long[] Bytes, TimeSpan[] ClientCpu, TimeSpan[] ServerCpu, long[] WorkItems) MeasureRounds(
        (string Name, Func<Task<int>> Run)[] methods, int rounds, int serverProcessId, int warmUpRounds)
    {
        var times = methods.Select(_ => new List<double>()).ToArray();
        var bytes = new long[methods.Length];
        var clientCpu = new TimeSpan[methods.Length];
        var serverCpu = new TimeSpan[methods.Length];
        var workItems = new long[methods.Length];
        using var self = Process.GetCurrentProcess();
        using var server = Process.GetProcessById(serverProcessId);
        for (int i = 0; i < warmUpRounds; i++)
            foreach (var (_, run) in methods) run().GetAwaiter().GetResult();
        WarmUntilJitQuiet(methods.Select(m => m.Run).ToArray());
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < methods.Length; k++)
            {
                int m = (k + round) % methods.Length;
                self.Refresh();
                server.Refresh();
                var cpu = (Client: self.TotalProcessorTime, Server: server.TotalProcessorTime);
                long allocated = GC.GetTotalAllocatedBytes(precise: true);
                long items = ThreadPool.CompletedWorkItemCount;
                long start = Stopwatch.GetTimestamp();
                methods[m].Run().GetAwaiter().GetResult();
                times[m].Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
                bytes[m] += GC.GetTotalAllocatedBytes(precise: true) - allocated;
                workItems[m] += ThreadPool.CompletedWorkItemCount - items;
                self.Refresh();
                server.Refresh();
                clientCpu[m] += self.TotalProcessorTime - cpu.Client;
                serverCpu[m] += server.TotalProcessorTime - cpu.Server;
            }
        }
        return (times, bytes, clientCpu, serverCpu, workItems);
    }

    /// <summary>
    /// More rounds of every way until a whole round compiles nothing (at most 60 s): after a fixed warm-up, tiered
    /// compilation still recompiles hot methods for seconds (its background thread took 0.5 s of CPU in the 4 s after
    /// 60,000 calls), which would land on whichever way happens to run then.
    /// </summary>
    internal static void WarmUntilJitQuiet(Func<Task<int>>[] runs)
    {
        long deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 60;
        int extra = 0;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            long compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
            foreach (var run in runs) run().GetAwaiter().GetResult();
            extra++;
            if (System.Runtime.JitInfo.GetCompiledMethodCount() == compiled) break;
        }
        Console.Error.WriteLine($"// warm-up: {extra} more round(s) until one compiled nothing ({System.Runtime.JitInfo.GetCompiledMethodCount():N0} methods compiled)");
    }

    /// <summary>
    /// <c>--fanout-profile floor|all|settled|each [rounds]</c>: one way of fanning out, round after round, for a
    /// profiler (<c>perf record</c> with DOTNET_PerfMapEnabled=1) to watch; prints this process's CPU per invocation.
    /// </summary>
    public static int Profile(TextWriter output, string method, int rounds)
    {
        using var emulator = EmulatorProcess.StartShared(output);
        using var client = FanOutInput.Client(emulator.Endpoint);
        using var http = FanOutInput.FloorClient();
        var fanOut = new AwsFanOutOptions { MaxConcurrency = Concurrency };
        Func<Task<int>> run = method switch
        {
            "floor" => () => FanOutInput.FloorAsync(http, emulator.Endpoint.ToString(), Count, Concurrency),
            "all" => () => FanOutInput.InvokeAllAsync(client, Count, fanOut),
            "settled" => () => FanOutInput.InvokeAllSettledAsync(client, Count, fanOut),
            "each" => () => FanOutInput.InvokeEachAsync(client, Count, fanOut),
            _ => throw new ArgumentException($"Unknown method '{method}'; give floor, all, settled or each.", nameof(method)),
        };
        run().GetAwaiter().GetResult();
        using var self = Process.GetCurrentProcess();
        var cpu = self.TotalProcessorTime;
        long start = Stopwatch.GetTimestamp();
        for (int round = 0; round < rounds; round++) run().GetAwaiter().GetResult();
        var elapsed = Stopwatch.GetElapsedTime(start);
        self.Refresh();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{method}: {rounds} x {Count:N0} invocations in {elapsed.TotalSeconds:F2} s ({rounds * Count / elapsed.TotalSeconds:N0}/s), {Micro(self.TotalProcessorTime - cpu, rounds)} CPU per invocation in this process (pid {Environment.ProcessId})"));
        return 0;
    }

    private static string Micro(TimeSpan cpu, int rounds) =>
        (cpu.TotalMicroseconds / rounds / Count).ToString("F1", CultureInfo.InvariantCulture) + " µs";

    internal static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        int n = sorted.Count;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    internal static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
