using BenchmarkDotNet.Running;
using SigV4Lite.Bench;

// dotnet run -c Release --project bench -- --filter '*'              every benchmark, BenchmarkDotNet's default job
// dotnet run -c Release --project bench -- --filter '*' --job short   quick BenchmarkDotNet figures
// dotnet run -c Release --project bench -- --interleaved [name part]  quick, load-tolerant comparison (see Interleaved)
// dotnet run -c Release --project bench -- --verify                   checks our signatures against AWSSDK.Core's
// dotnet run -c Release --project bench -- --filter '*FanOut*'        the Lambda fan-out (needs the emulator's Release build)
// dotnet run -c Release --project bench -- --fanout-memory            streaming fan-out's peak memory, 1,000 to 100,000 invocations
// dotnet run -c Release --project bench -- --fanout-allocations [mock] the fan-out's allocations by type, against the floor's
// dotnet run -c Release --project bench -- --fanout-interleaved [N]   the fan-out benchmarks in turn, N rounds (load-tolerant)
// dotnet run -c Release --project bench -- --fanout-profile all [N]   one fan-out way, N rounds, for perf record
// dotnet run -c Release --project bench -- --adaptive-fanout [N]      adaptive concurrency against a limit of 100, N rounds
// dotnet run -c Release --project bench -- --filter '*EventStream*'   decoding 64 KiB event-stream messages, CRC32
// dotnet run -c Release --project bench -- --stream-latency [N]       a response stream's first chunk: socket to caller
// dotnet run -c Release --project bench -- --filter '*FastFanOut*'    issue 10's fan-out against the fast Lambda mock
// dotnet run -c Release --project bench -- --fast-fanout-interleaved [N]   the same, the four ways in turn, N rounds
// dotnet run -c Release --project bench -- --fast-fanout-profile all 10000 256 [N]   one way, N rounds, for perf record; GC pauses by kind
// dotnet run -c Release --project bench -- --fast-fanout-memory       peak memory against the fast mock, 10,000 and 100,000 calls
// dotnet run -c Release --project bench -- --ab BASELINE/SigV4Lite.dll [N] [--mock]  this build against another build of the library, in one process, turn by turn
// dotnet run -c Release --project bench -- --fanout-overhead [N [way]] [--yield]  the client's own CPU per call, in-process answers, no network (a way's name start: that one only, for perf; --yield: each answer comes later, from the thread pool)
// dotnet run -c Release --project bench -- --lambda-mock              the fast Lambda mock alone (prints its address)
if (args.Length > 0 && args[0] == "--adaptive-fanout")
    return await AdaptiveFanOut.RunAsync(Console.Out, args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3);
if (args.Contains("--verify"))
    return Verify.Run(Console.Out) ? 0 : 1;
if (args.Length > 0 && args[0] == "--fanout-allocations")
    return FanOutAllocations.Run(Console.Out, fastMock: args.Length > 1 && args[1] == "mock");
if (args.Length > 0 && args[0] == "--fanout-interleaved")
    return FanOutInterleaved.Run(Console.Out, args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 15);
if (args.Length > 1 && args[0] == "--fanout-profile")
    return FanOutInterleaved.Profile(Console.Out, args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 20);
if (args.Length > 0 && args[0] == "--fanout-memory")
    return FanOutMemory.Run(Console.Out);
if (args.Length > 0 && args[0] == "--fast-fanout-memory")
    return FanOutMemory.RunFast(Console.Out);
if (args.Length == 4 && args[0] == "--fanout-memory-run") // one run of --fanout-memory, in a process of its own
    return FanOutMemory.RunOne(args[1], long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), new Uri(args[3]), Console.Out);
if (args.Length > 0 && args[0] == "--stream-latency")
    return StreamLatency.Run(Console.Out, args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5000);
if (args.Length > 0 && args[0] == "--lambda-mock")
    return LambdaMock.Serve(Console.Out);
if (args.Length > 0 && args[0] == "--fanout-overhead")
{
    var rest = args.Skip(1).Where(a => a != "--yield").ToArray();
    return FanOutOverhead.Run(Console.Out, rest.Length > 0 ? int.Parse(rest[0], System.Globalization.CultureInfo.InvariantCulture) : 15, rest.Length > 1 ? rest[1] : null,
        yielding: args.Contains("--yield"));
}
if (args.Length > 1 && args[0] == "--ab")
{
    var rest = args.Skip(2).Where(a => a != "--mock").ToArray();
    return AbRun.Run(Console.Out, args[1], rest.Length > 0 ? int.Parse(rest[0], System.Globalization.CultureInfo.InvariantCulture) : 40, mock: args.Contains("--mock"));
}
if (args.Length > 0 && args[0] == "--fast-fanout-interleaved")
    return FastFanOutRuns.Interleaved(Console.Out, args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 15);
if (args.Length > 3 && args[0] == "--fast-fanout-profile")
    return FastFanOutRuns.Profile(Console.Out, args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture),
        int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture), args.Length > 4 ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : 20);
if (args.Length > 0 && args[0] == "--interleaved")
{
    Interleaved.Run(Console.Out, args.Length > 1 ? args[1] : "");
    return 0;
}

// The fan-out benchmarks share one emulator process, started and warmed up here; issue 10's, one fast mock.
using var emulator = args.Any(a => (a.Contains("FanOut", StringComparison.OrdinalIgnoreCase) && !a.Contains("FastFanOut", StringComparison.OrdinalIgnoreCase)) || a == "*")
    ? EmulatorProcess.StartShared(Console.Out) : null;
using var mock = args.Any(a => a.Contains("FastFanOut", StringComparison.OrdinalIgnoreCase) || a == "*") ? LambdaMockProcess.Start() : null;
if (mock is not null) Environment.SetEnvironmentVariable(LambdaMockProcess.SharedUrlVariable, mock.Endpoint.ToString());
BenchmarkSwitcher.FromAssembly(typeof(LambdaRequest).Assembly).Run(args);
return 0;
