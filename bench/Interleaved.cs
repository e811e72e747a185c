using System.Diagnostics;
using System.Reflection;
using BenchmarkDotNet.Attributes;

namespace SigV4Lite.Bench;

/// <summary>
/// A quick comparison for a busy machine (<c>--interleaved</c>): runs the same [Benchmark] methods in rounds,
/// every method once per round, and keeps each method's fastest round. Other work on the machine slows some rounds
/// but seldom all of them, so the minimum stays close to the unloaded figure and the ratios between methods hold,
/// where BenchmarkDotNet's means move with the load. No statistics beyond that: use BenchmarkDotNet for the record.
/// </summary>
internal static class Interleaved
{
    public static void Run(TextWriter output, string filter, int rounds = 30, int callsPerRound = 10_000)
    {
        output.WriteLine($"Fastest of {rounds} interleaved rounds of {callsPerRound} calls; allocation per call on the calling thread.");
        foreach (var type in typeof(Interleaved).Assembly.GetTypes().Where(t => t.GetMethods().Any(m => m.GetCustomAttribute<BenchmarkAttribute>() is not null)).OrderBy(t => t.Name))
        {
            var instance = Activator.CreateInstance(type)!;
            var benchmarks = type.GetMethods()
                .Select(m => (Method: m, Attribute: m.GetCustomAttribute<BenchmarkAttribute>()))
                .Where(b => b.Attribute is not null && $"{type.Name}.{b.Method.Name}".Contains(filter, StringComparison.OrdinalIgnoreCase))
                .Select(b => (Name: b.Attribute!.Description ?? b.Method.Name, b.Attribute.Baseline, Call: ToCall(instance, b.Method)))
                .ToArray();
            if (benchmarks.Length == 0) continue;
            foreach (var setup in type.GetMethods().Where(m => m.GetCustomAttribute<GlobalSetupAttribute>() is not null)) setup.Invoke(instance, null);

            var fastest = new double[benchmarks.Length];
            var allocated = new double[benchmarks.Length];
            Array.Fill(fastest, double.MaxValue);
            int sink = 0;
            foreach (var b in benchmarks) for (int i = 0; i < callsPerRound; i++) sink += b.Call(); // warm up past tiered JIT
            for (int round = 0; round < rounds; round++)
                for (int j = 0; j < benchmarks.Length; j++)
                {
                    var call = benchmarks[j].Call;
                    long bytes = GC.GetAllocatedBytesForCurrentThread();
                    long start = Stopwatch.GetTimestamp();
                    for (int i = 0; i < callsPerRound; i++) sink += call();
                    double ns = Stopwatch.GetElapsedTime(start).TotalNanoseconds / callsPerRound;
                    allocated[j] = (GC.GetAllocatedBytesForCurrentThread() - bytes) / (double)callsPerRound;
                    fastest[j] = Math.Min(fastest[j], ns);
                }
            GC.KeepAlive(sink);
            foreach (var cleanup in type.GetMethods().Where(m => m.GetCustomAttribute<GlobalCleanupAttribute>() is not null)) cleanup.Invoke(instance, null);

            int baseline = Math.Max(0, Array.FindIndex(benchmarks, b => b.Baseline));
            output.WriteLine();
            output.WriteLine($"{type.Name}");
            output.WriteLine("| Method | Fastest | Ratio | Allocated |");
            output.WriteLine("|---|---:|---:|---:|");
            for (int j = 0; j < benchmarks.Length; j++)
                output.WriteLine($"| {benchmarks[j].Name} | {fastest[j]:N0} ns | {fastest[j] / fastest[baseline]:F2} | {allocated[j]:F0} B |");
        }
    }

    private static Func<int> ToCall(object instance, MethodInfo method) =>
        method.ReturnType == typeof(int) ? method.CreateDelegate<Func<int>>(instance)
        : method.ReturnType == typeof(Task<int>) ? Sync(method.CreateDelegate<Func<Task<int>>>(instance))
        : throw new InvalidOperationException($"{method.Name} must return int or Task<int>.");

    private static Func<int> Sync(Func<Task<int>> call) => () => call().GetAwaiter().GetResult();
}
