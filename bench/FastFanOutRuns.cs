using System.Diagnostics;
using System.Globalization;

namespace SigV4Lite.Bench;

/// <summary>
/// <c>--fast-fanout-interleaved [rounds]</c>: issue 10's four ways in turn, round after round, in one process against
/// one warm mock process, for each shape; the median of each round's ratio to each floor holds on a shared machine
/// where BenchmarkDotNet's means move with the load. <c>--fast-fanout-profile way count concurrency [rounds]</c>: one
/// way, round after round, for <c>perf record</c>.
/// </summary>
internal static class FastFanOutRuns
{
    public static int Interleaved(TextWriter output, int rounds)
    {
        using var mock = LambdaMockProcess.Start();
        using var client = FanOutInput.Client(mock.Endpoint);
        using var http = FanOutInput.FloorClient();
        output.WriteLine($"// Lambda mock: pid {mock.ProcessId}, {mock.Endpoint}; load average before: {FanOutInterleaved.LoadAverage()}");
        foreach (var (count, concurrency) in FastFanOut.Shapes)
            RunShape(output, rounds, mock, client, http, count, concurrency);
        output.WriteLine($"load average after: {FanOutInterleaved.LoadAverage()}");
        return 0;
    }

    private static void RunShape(TextWriter output, int rounds, LambdaMockProcess mock, LambdaClient client, HttpClient http, int count, int concurrency)
    {
        var methods = FastFanOut.Methods(mock.Endpoint, client, http, count, concurrency);
        // Warm-up: past tiered JIT in both processes (60,000 calls of each way).
        var (times, bytes, clientCpu, mockCpu, workItems) = FanOutInterleaved.MeasureRounds(methods, rounds, mock.ProcessId, warmUpRounds: Math.Max(3, 60_000 / count));
        output.WriteLine();
        output.WriteLine($"{count:N0} calls at {concurrency} in flight, {rounds} rounds");
        output.WriteLine();
        output.WriteLine("| way | median round | calls/s (median) | fastest round | vs unsigned floor (median of rounds) | vs signed floor (median of rounds) | allocated per call | client CPU per call | mock CPU per call | work items per call |");
        output.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (int m = 0; m < methods.Length; m++)
        {
            double median = FanOutInterleaved.Median(times[m]);
            double vsFloor = FanOutInterleaved.Median(times[0].Zip(times[m], (floor, t) => floor / t).ToList());
            double vsSigned = FanOutInterleaved.Median(times[1].Zip(times[m], (floor, t) => floor / t).ToList());
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {methods[m].Name} | {median * 1000:F1} ms | {count / median:N0} | {times[m].Min() * 1000:F1} ms | {vsFloor:F3}x | {vsSigned:F3}x | {bytes[m] / (double)rounds / count:N0} B | {Micro(clientCpu[m], rounds, count)} | {Micro(mockCpu[m], rounds, count)} | {workItems[m] / (double)rounds / count:F2} |"));
        }
        output.Flush();
    }

    public static int Profile(TextWriter output, string way, int count, int concurrency, int rounds)
    {
        using var mock = LambdaMockProcess.Start();
        using var client = FanOutInput.Client(mock.Endpoint);
        using var http = FanOutInput.FloorClient();
        var methods = FastFanOut.Methods(mock.Endpoint, client, http, count, concurrency);
        var run = way switch
        {
            "floor" => methods[0].Run,
            "signed-floor" => methods[1].Run,
            "all" => methods[2].Run,
            "each" => methods[3].Run,
            "single" => methods[4].Run,
            _ => throw new ArgumentException($"Unknown way '{way}'; give floor, signed-floor, all, each or single.", nameof(way)),
        };
        for (int i = 0; i < Math.Max(3, 60_000 / count); i++) run().GetAwaiter().GetResult();
        FanOutInterleaved.WarmUntilJitQuiet([run]);
        using var self = Process.GetCurrentProcess();
        using var server = Process.GetProcessById(mock.ProcessId);
        var cpu = (Client: self.TotalProcessorTime, Mock: server.TotalProcessorTime);
        output.WriteLine($"// measuring from now (pid {Environment.ProcessId})");
        output.Flush();
        using var pauses = new GcPauses();
        pauses.Start();
        FastFanOut.ReadingAfterTicks = 0;
        var gcs = (Gen0: GC.CollectionCount(0), Gen1: GC.CollectionCount(1), Gen2: GC.CollectionCount(2), Paused: GC.GetTotalPauseDuration());
        long start = Stopwatch.GetTimestamp();
        for (int round = 0; round < rounds; round++) run().GetAwaiter().GetResult();
        var elapsed = Stopwatch.GetElapsedTime(start);
        var paused = GC.GetTotalPauseDuration() - gcs.Paused;
        var collected = (Gen0: GC.CollectionCount(0) - gcs.Gen0, Gen1: GC.CollectionCount(1) - gcs.Gen1, Gen2: GC.CollectionCount(2) - gcs.Gen2);
        output.WriteLine($"// GC pauses by kind: {pauses.Stop(rounds)}");
        if (way == "all")
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"// the caller reading the answers after the list came back: {FastFanOut.ReadingAfterTicks * 1000.0 / Stopwatch.Frequency / rounds:F2} ms a round"));
        self.Refresh();
        server.Refresh();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{way}: {rounds} x {count:N0} calls at {concurrency} in {elapsed.TotalSeconds:F2} s ({rounds * count / elapsed.TotalSeconds:N0}/s), CPU per call: client {Micro(self.TotalProcessorTime - cpu.Client, rounds, count)}, mock {Micro(server.TotalProcessorTime - cpu.Mock, rounds, count)}; " +
            $"collections per round (any generation, gen1 or 2, gen2): {collected.Gen0 / (double)rounds:F2}, {collected.Gen1 / (double)rounds:F2}, {collected.Gen2 / (double)rounds:F2}; " +
            $"paused {paused.TotalMilliseconds / rounds:F2} ms a round ({paused.TotalMilliseconds * 1000 / rounds / count:F2} µs a call)"));
        return 0;
    }

    private static string Micro(TimeSpan cpu, int rounds, int count) =>
        (cpu.TotalMicroseconds / rounds / count).ToString("F1", CultureInfo.InvariantCulture) + " µs";


}
