using System.Diagnostics;
using System.Globalization;
using SigV4Lite.Emulator;

namespace SigV4Lite.Bench;

/// <summary>
/// `--adaptive-fanout [rounds]`: 10,000 invocations of a function that runs 10 ms and admits at most 100 at once (the
/// in-process emulator's reserved concurrency: 429 ReservedFunctionConcurrentInvocationLimitExceeded above it), three
/// ways in turn each round: adaptive concurrency from MaxConcurrency 256; a fixed concurrency of exactly 100 (the best a
/// caller who knew the limit could do); and 256 without adaptation (retries only). Prints throughput, throttled attempts
/// and failures per way, each round and the best.
/// </summary>
internal static class AdaptiveFanOut
{
    private const int Count = 10_000, Limit = 100;

    public static async Task<int> RunAsync(TextWriter output, int rounds)
    {
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { VerifySignatures = false });
        emulator.AddFunction("limited", async (invocation, token) =>
        {
            await Task.Delay(10, token);
            return invocation.Payload.ToArray();
        }, concurrencyLimit: Limit);
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = emulator.Endpoint,
            Region = emulator.Options.Region,
            Credentials = new AwsCredentials(LambdaEmulatorOptions.ExampleAccessKeyId, LambdaEmulatorOptions.ExampleSecretAccessKey),
            RetryBaseDelay = TimeSpan.FromMilliseconds(50),
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });
        var ways = new (string Name, AwsFanOutOptions Options)[]
        {
            ("adaptive, MaxConcurrency 256", new AwsFanOutOptions { MaxConcurrency = 256 }),
            ("fixed concurrency 100", new AwsFanOutOptions { MaxConcurrency = Limit, AdaptiveConcurrency = false }),
            ("256, retries only", new AwsFanOutOptions { MaxConcurrency = 256, AdaptiveConcurrency = false }),
        };
        var best = new Dictionary<string, (double PerSecond, long Throttled, long Attempts, int Failed)>();
        output.WriteLine($"{Count} invocations of a 10 ms function limited to {Limit} concurrent; {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        for (int round = 0; round <= rounds; round++) // round 0 warms up
            foreach (var (name, options) in ways)
            {
                emulator.Counters.Reset();
                var watch = Stopwatch.StartNew();
                var outcomes = await client.InvokeAllSettledAsync(Requests(), options);
                watch.Stop();
                long attempts = emulator.Counters.Requests;
                int failed = outcomes.Count(o => !o.Succeeded);
                double perSecond = Count / watch.Elapsed.TotalSeconds;
                if (round == 0) continue;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {round} {name,-30} {perSecond,7:0}/s  throttled {attempts - Count,6} of {attempts,6} attempts ({100.0 * (attempts - Count) / attempts:0.0}%)  failed {failed}"));
                if (!best.TryGetValue(name, out var b) || perSecond > b.PerSecond) best[name] = (perSecond, attempts - Count, attempts, failed);
            }
        output.WriteLine("best round:");
        double reference = best[ways[1].Name].PerSecond;
        foreach (var (name, (perSecond, throttled, attempts, failed)) in best)
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {name,-30} {perSecond,7:0}/s = {perSecond / reference:0.00}x fixed 100; throttled {100.0 * throttled / attempts:0.0}% of attempts; failed {failed}"));
        return 0;
    }

    private static IEnumerable<SigV4Lite.LambdaRequest> Requests()
    {
        for (int i = 0; i < Count; i++) yield return new SigV4Lite.LambdaRequest("limited", "{\"i\":" + i.ToString(CultureInfo.InvariantCulture) + "}");
    }
}
