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
        output.WriteLine($"// Lambda mock: pid {mock.ProcessId}, {mock.Endpoint}; load average before: {LoadAverage()}");
        foreach (var (count, concurrency) in FastFanOut.Shapes)
            RunShape(output, rounds, mock, client, http, count, concurrency);
        output.WriteLine($"load average after: {LoadAverage()}");
        return 0;
    }

    private static void RunShape(TextWriter output, int rounds, LambdaMockProcess mock, LambdaClient client, HttpClient http, int count, int concurrency)
    {
        var methods = FastFanOut.Methods(mock.Endpoint, client, http, count, concurrency);
        var times = methods.Select(_ => new List<double>()).ToArray();
        var bytes = new long[methods.Length];
        var clientCpu = new TimeSpan[methods.Length];
        var mockCpu = new TimeSpan[methods.Length];
        var workItems = new long[methods.Length];
        using var self = Process.GetCurrentProcess();
        using var server = Process.GetProcessById(mock.ProcessId);
        // Warm-up: past tiered JIT in both processes (a few hundred thousand calls on this machine take under 10 s).
        for (int i = 0; i < Math.Max(3, 60_000 / count); i++)
            foreach (var (_, run) in methods) run().GetAwaiter().GetResult();
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < methods.Length; k++)
            {
                int m = (k + round) % methods.Length; // a different way goes first each round
                self.Refresh();
                server.Refresh();
                var cpu = (Client: self.TotalProcessorTime, Mock: server.TotalProcessorTime);
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
                mockCpu[m] += server.TotalProcessorTime - cpu.Mock;
            }
        }

        output.WriteLine();
        output.WriteLine($"{count:N0} calls at {concurrency} in flight, {rounds} rounds");
        output.WriteLine();
        output.WriteLine("| way | median round | calls/s (median) | fastest round | vs unsigned floor (median of rounds) | vs signed floor (median of rounds) | allocated per call | client CPU per call | mock CPU per call | work items per call |");
        output.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (int m = 0; m < methods.Length; m++)
        {
            double median = Median(times[m]);
            double vsFloor = Median(times[0].Zip(times[m], (floor, t) => floor / t).ToList());
            double vsSigned = Median(times[1].Zip(times[m], (floor, t) => floor / t).ToList());
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
            _ => throw new ArgumentException($"Unknown way '{way}'; give floor, signed-floor, all or each.", nameof(way)),
        };
        for (int i = 0; i < Math.Max(3, 60_000 / count); i++) run().GetAwaiter().GetResult();
        using var self = Process.GetCurrentProcess();
        using var server = Process.GetProcessById(mock.ProcessId);
        var cpu = (Client: self.TotalProcessorTime, Mock: server.TotalProcessorTime);
        output.WriteLine($"// measuring from now (pid {Environment.ProcessId})");
        output.Flush();
        long start = Stopwatch.GetTimestamp();
        for (int round = 0; round < rounds; round++) run().GetAwaiter().GetResult();
        var elapsed = Stopwatch.GetElapsedTime(start);
        self.Refresh();
        server.Refresh();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{way}: {rounds} x {count:N0} calls at {concurrency} in {elapsed.TotalSeconds:F2} s ({rounds * count / elapsed.TotalSeconds:N0}/s), CPU per call: client {Micro(self.TotalProcessorTime - cpu.Client, rounds, count)}, mock {Micro(server.TotalProcessorTime - cpu.Mock, rounds, count)}"));
        return 0;
    }

    private static string Micro(TimeSpan cpu, int rounds, int count) =>
        (cpu.TotalMicroseconds / rounds / count).ToString("F1", CultureInfo.InvariantCulture) + " µs";

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        int n = sorted.Count;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
