using BenchmarkDotNet.Running;
using SigV4Lite.Bench;

// dotnet run -c Release --project bench -- --filter '*'              every benchmark, BenchmarkDotNet's default job
// dotnet run -c Release --project bench -- --filter '*' --job short   quick BenchmarkDotNet figures
// dotnet run -c Release --project bench -- --interleaved [name part]  quick, load-tolerant comparison (see Interleaved)
// dotnet run -c Release --project bench -- --verify                   checks our signatures against AWSSDK.Core's
if (args.Contains("--verify"))
    return Verify.Run(Console.Out) ? 0 : 1;
if (args.Length > 0 && args[0] == "--interleaved")
{
    Interleaved.Run(Console.Out, args.Length > 1 ? args[1] : "");
    return 0;
}

BenchmarkSwitcher.FromAssembly(typeof(LambdaRequest).Assembly).Run(args);
return 0;
