using BenchmarkDotNet.Running;
using SigV4Lite.Bench;

// dotnet run -c Release --project bench -- --filter '*'              every benchmark, BenchmarkDotNet's default job
// dotnet run -c Release --project bench -- --filter '*' --job short   quick BenchmarkDotNet figures
// dotnet run -c Release --project bench -- --interleaved [name part]  quick, load-tolerant comparison (see Interleaved)
// dotnet run -c Release --project bench -- --verify                   checks our signatures against AWSSDK.Core's
// dotnet run -c Release --project bench -- --filter '*FanOut*'        the Lambda fan-out (needs the emulator's Release build)
// dotnet run -c Release --project bench -- --fanout-memory            streaming fan-out's peak memory, 1,000 to 100,000 invocations
// dotnet run -c Release --project bench -- --fanout-allocations       the fan-out's allocations by type, against the floor's
// dotnet run -c Release --project bench -- --fanout-interleaved [N]   the fan-out benchmarks in turn, N rounds (load-tolerant)
// dotnet run -c Release --project bench -- --fanout-profile all [N]   one fan-out way, N rounds, for perf record
// dotnet run -c Release --project bench -- --adaptive-fanout [N]      adaptive concurrency against a limit of 100, N rounds
// dotnet run -c Release --project bench -- --filter '*EventStream*'   decoding 64 KiB event-stream messages, CRC32
// dotnet run -c Release --project bench -- --stream-latency [N]       a response stream's first chunk: socket to caller
if (args.Length > 0 && args[0] == "--adaptive-fanout")
    return await AdaptiveFanOut.RunAsync(Console.Out, args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3);
if (args.Contains("--verify"))
    return Verify.Run(Console.Out) ? 0 : 1;
if (args.Length > 0 && args[0] == "--fanout-allocations")
    return FanOutAllocations.Run(Console.Out);
if (args.Length > 0 && args[0] == "--fanout-interleaved")
    return FanOutInterleaved.Run(Console.Out, args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 15);
if (args.Length > 1 && args[0] == "--fanout-profile")
    return FanOutInterleaved.Profile(Console.Out, args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 20);
if (args.Length > 0 && args[0] == "--fanout-memory")
    return FanOutMemory.Run(Console.Out);
if (args.Length == 4 && args[0] == "--fanout-memory-run") // one run of --fanout-memory, in a process of its own
    return FanOutMemory.RunOne(args[1], long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), new Uri(args[3]), Console.Out);
if (args.Length > 0 && args[0] == "--stream-latency")
    return StreamLatency.Run(Console.Out, args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5000);
if (args.Length > 0 && args[0] == "--interleaved")
{
    Interleaved.Run(Console.Out, args.Length > 1 ? args[1] : "");
    return 0;
}

// The fan-out benchmarks share one emulator process, started and warmed up here.
using var emulator = args.Any(a => a.Contains("FanOut", StringComparison.OrdinalIgnoreCase) || a == "*")
    ? EmulatorProcess.StartShared(Console.Out) : null;
BenchmarkSwitcher.FromAssembly(typeof(LambdaRequest).Assembly).Run(args);
return 0;
