using System.Diagnostics.Tracing;
using System.Globalization;

namespace SigV4Lite.Bench;

/// <summary>
/// <c>--fanout-allocations</c>: where the fan-out's bytes go, by type, for the floor and for InvokeAllAsync. The
/// runtime reports an allocation sample (GCAllocationTick) about every 100 KB allocated, naming the type of the
/// object that crossed the mark: summed by type over many invocations, the samples share out the bytes in
/// proportion. Totals come from <see cref="GC.GetTotalAllocatedBytes(bool)"/> (all threads), as BenchmarkDotNet's.
/// </summary>
internal static class FanOutAllocations
{
    private const int Count = 50_000, Concurrency = FanOutBenchmarks.Concurrency;

    /// <param name="output">Where the table goes.</param>
    /// <param name="fastMock">Issue 10's way: against the fast mock, the floor and InvokeAllAsync reading each answer's
    /// JSON (<see cref="FastFanOut"/>), at 256 in flight; else issue 5's, against the emulator at 64.</param>
    public static int Run(TextWriter output, bool fastMock = false)
    {
        using var emulator = fastMock ? null : EmulatorProcess.Start();
        using var mock = fastMock ? LambdaMockProcess.Start() : null;
        var endpoint = emulator?.Endpoint ?? mock!.Endpoint;
        using var client = FanOutInput.Client(endpoint);
        using var floor = FanOutInput.FloorClient();
        string origin = endpoint.ToString();
        var fanOut = new AwsFanOutOptions { MaxConcurrency = Concurrency };
        Func<int, Task> floorRun = fastMock ? count => FastFanOut.FloorAsync(floor, origin, count, 256, null) : count => FanOutInput.FloorAsync(floor, origin, count, Concurrency);
        Func<int, Task> oursRun = fastMock ? count => FastFanOut.InvokeAllAsync(client, count, 256) : count => FanOutInput.InvokeAllAsync(client, count, fanOut);

        var floorBytes = Measure(floorRun, out long floorTotal);
        var oursBytes = Measure(oursRun, out long oursTotal);
        output.WriteLine($"{Count:N0} invocations each, concurrency {Concurrency}; bytes per invocation (GC.GetTotalAllocatedBytes): floor {floorTotal / (double)Count:N0} B, InvokeAllAsync {oursTotal / (double)Count:N0} B, difference {(oursTotal - floorTotal) / (double)Count:N0} B");
        output.WriteLine();
        output.WriteLine("| type (sampled) | floor B/invocation | InvokeAllAsync B/invocation | difference |");
        output.WriteLine("|---|---:|---:|---:|");
        foreach (string type in floorBytes.Keys.Union(oursBytes.Keys)
                     .OrderByDescending(t => Math.Abs(oursBytes.GetValueOrDefault(t) - floorBytes.GetValueOrDefault(t))))
        {
            double f = floorBytes.GetValueOrDefault(type) / Count, o = oursBytes.GetValueOrDefault(type) / Count;
            if (Math.Max(f, o) < 8) continue;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| `{type}` | {f:N0} | {o:N0} | {o - f:+#,0;-#,0;0} |"));
        }
        return 0;
    }

    // Warm up, then run Count invocations while sampling; the sampled bytes are scaled to the exact total.
    private static Dictionary<string, double> Measure(Func<int, Task> run, out long total)
    {
        run(2_000).GetAwaiter().GetResult();
        using var listener = new AllocationListener();
        long before = GC.GetTotalAllocatedBytes(precise: true);
        run(Count).GetAwaiter().GetResult();
        total = GC.GetTotalAllocatedBytes(precise: true) - before;
        var sampled = listener.Stop();
        double sum = sampled.Values.Sum();
        long exact = total;
        return sampled.ToDictionary(p => p.Key, p => p.Value * exact / sum);
    }

    private sealed class AllocationListener : EventListener
    {
        private readonly Dictionary<string, double> _bytes = [];
        private bool _stopped;

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime")
                EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1); // GC keyword: AllocationTick is verbose
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            if (e.EventName is null || !e.EventName.StartsWith("GCAllocationTick", StringComparison.Ordinal) || e.Payload is null || e.PayloadNames is null) return;
            int typeIndex = e.PayloadNames.IndexOf("TypeName"), amountIndex = e.PayloadNames.IndexOf("AllocationAmount64");
            if (typeIndex < 0 || amountIndex < 0) return;
            string type = e.Payload[typeIndex] as string ?? "?";
            double amount = Convert.ToDouble(e.Payload[amountIndex], CultureInfo.InvariantCulture);
            lock (_bytes)
            {
                if (_stopped) return;
                _bytes[type] = _bytes.GetValueOrDefault(type) + amount;
            }
        }

        public Dictionary<string, double> Stop()
        {
            lock (_bytes)
            {
                _stopped = true;
                return new Dictionary<string, double>(_bytes);
            }
        }
    }
}
