using System;
using System.Threading;
using System.Threading.Tasks;
using SigV4Lite.Samples;

// Ctrl+C stops the fan-out (the invocations in flight are cancelled) instead of killing the process.
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
return await FanOutDemo.RunAsync(args, Console.Out, Console.Error, Environment.GetEnvironmentVariable, stop.Token);
