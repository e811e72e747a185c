using BenchmarkDotNet.Running;
using SigV4Lite.Bench;

// dotnet run -c Release --project bench -- --filter '*'            every benchmark, default job
// dotnet run -c Release --project bench -- --filter '*' --job short quick figures
// dotnet run -c Release --project bench -- --verify                 checks our signatures against AWSSDK.Core's
if (args.Contains("--verify"))
    return Verify.Run(Console.Out) ? 0 : 1;

BenchmarkSwitcher.FromAssembly(typeof(LambdaRequest).Assembly).Run(args);
return 0;
