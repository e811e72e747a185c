using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using SigV4Lite.Emulator;

namespace SigV4Lite.Samples;

/// <summary>
/// The fan-out demo: invokes hello-world-0 .. hello-world-N concurrently, shows progress, then a summary (count,
/// failures, p50/p99 latency, invocations per second) and a few results; or, with --stream, streams each answer
/// (InvokeWithResponseStream), printing its chunks as they arrive. Runs against a Lambda emulator started in process
/// unless AWS is configured (a region, profile, endpoint or credentials, by option or environment).
/// </summary>
public static class FanOutDemo
{
    /// <summary>Every invocation succeeded.</summary>
    public const int ExitSuccess = 0;
    /// <summary>At least one invocation failed (or the run was cancelled).</summary>
    public const int ExitFailures = 1;
    /// <summary>The options were wrong; nothing was invoked.</summary>
    public const int ExitBadOptions = 2;

    /// <summary>The usage text.</summary>
    public const string Usage = """
        Usage: dotnet run --project samples/FanOut -- [options]
          --count N               invocations to make (default 100)
          --concurrency N         most invocations in flight at once (default 16)
          --function-pattern P    function name, {i} replaced by the index (default hello-world-{i})
          --payload-file FILE     JSON payload, {i} replaced by the index (default {"hello": {i}})
          --region R              use AWS in region R (else AWS_REGION when AWS is configured)
          --endpoint URL          use the Lambda endpoint at URL
          --profile NAME          use AWS with this profile (instead of AWS_PROFILE)
          --emulator              use the in-process emulator even when AWS is configured
          --stream                stream each answer (InvokeWithResponseStream), printing its chunks as they
                                  arrive; one invocation at a time, --count 1 unless given
          --help                  show this text
        Without AWS configuration (region, profile, endpoint or credentials in options or environment), the
        invocations go to a Lambda emulator started in process that echoes every function (streamed in four
        chunks, 50 ms apart).
        Exit codes: 0 all succeeded, 1 some failed, 2 bad options.
        """;

    private static readonly string[] AwsVariables =
        ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "AWS_ACCESS_KEY_ID"];

    /// <summary>Runs the demo.</summary>
    /// <param name="args">The command-line options.</param>
    /// <param name="output">Where progress, the summary and results go.</param>
    /// <param name="error">Where problems go.</param>
    /// <param name="environment">Reads an environment variable: it decides whether AWS is configured, and the AWS
    /// configuration (region, endpoint, credentials) is read from it. Tests pass their own.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>The exit code: <see cref="ExitSuccess"/>, <see cref="ExitFailures"/> or <see cref="ExitBadOptions"/>.</returns>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, Func<string, string?> environment, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        ArgumentNullException.ThrowIfNull(environment);

        if (!DemoOptions.TryParse(args, out var options, out string? problem))
        {
            error.WriteLine($"fanout: {problem}");
            error.WriteLine(Usage);
            return ExitBadOptions;
        }
        if (options.Help)
        {
            output.WriteLine(Usage);
            return ExitSuccess;
        }

        bool useAws = !options.UseEmulator && (options.Region is not null || options.Endpoint is not null || options.Profile is not null
            || AwsVariables.Any(name => !string.IsNullOrEmpty(environment(name))));
        if (!useAws)
        {
            await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { EchoUnknownFunctions = true }, cancellationToken);
            var (accessKeyId, secret) = emulator.Options.Credentials.First();
            using var client = new LambdaClient(new AwsClientOptions
            {
                Endpoint = emulator.Endpoint,
                Region = emulator.Options.Region,
                Credentials = new AwsCredentials(accessKeyId, secret),
            });
            return await RunModeAsync(client, options, $"the in-process emulator at {emulator.Endpoint}", output, error, cancellationToken);
        }

        // Region, endpoint and credentials not given come from this environment and the profile, as in the AWS SDKs.
        var config = new AwsConfigOptions { GetEnvironmentVariable = environment, Profile = options.Profile };
        LambdaClient aws;
        try
        {
            aws = new LambdaClient(new AwsClientOptions { Region = options.Region, Endpoint = options.Endpoint, Config = config });
        }
        catch (Exception e) when (e is AwsConfigurationException or ArgumentException)
        {
            error.WriteLine($"fanout: AWS is configured but the client cannot be made: {e.Message}");
            return ExitBadOptions;
        }
        using (aws)
            return await RunModeAsync(aws, options, $"AWS Lambda at {aws.Endpoint} ({aws.Region})", output, error, cancellationToken);
    }

    private static Task<int> RunModeAsync(LambdaClient client, DemoOptions options, string target, TextWriter output, TextWriter error, CancellationToken cancellationToken) =>
        options.Stream
            ? StreamAsync(client, options, target, output, error, cancellationToken)
            : FanOutAsync(client, options, target, output, error, cancellationToken);

    // One invocation at a time, so that each stream's chunks print together, as they arrive.
    private static async Task<int> StreamAsync(LambdaClient client, DemoOptions options, string target, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        output.WriteLine($"Streaming {options.FunctionPattern} {options.Count} {(options.Count == 1 ? "time" : "times")}, one at a time, on {target}");
        int streamed = 0, failures = 0;
        try
        {
            foreach (var request in Requests(options))
            {
                streamed++;
                if (!await StreamOneAsync(client, request, output, cancellationToken)) failures++;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            error.WriteLine($"fanout: cancelled during stream {streamed} of {options.Count}.");
            return ExitFailures;
        }
        output.WriteLine("Summary");
        output.WriteLine($"  streams:  {streamed}");
        output.WriteLine($"  failures: {failures}");
        return failures == 0 ? ExitSuccess : ExitFailures;
    }

    // Prints each chunk with the time since the call started; false when the call or the stream failed.
    private static async Task<bool> StreamOneAsync(LambdaClient client, LambdaRequest request, TextWriter output, CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var text = Encoding.UTF8.GetDecoder(); // a character may span two chunks
        int chunks = 0;
        long bytes = 0;
        try
        {
            await using var response = await client.InvokeWithResponseStreamAsync(request, cancellationToken);
            await foreach (var chunk in response.ReadChunksAsync(cancellationToken))
            {
                chunks++;
                bytes += chunk.Length;
                var chars = new char[text.GetCharCount(chunk.Span, flush: false)];
                text.GetChars(chunk.Span, chars, flush: false);
                output.WriteLine(FormattableString.Invariant($"  {request.FunctionName} +{clock.Elapsed.TotalMilliseconds:0} ms: {new string(chars)}"));
            }
            output.WriteLine(FormattableString.Invariant($"  {request.FunctionName} done: {chunks} chunks, {bytes} bytes in {clock.Elapsed.TotalMilliseconds:0} ms"));
            return true;
        }
        catch (Exception e) when (e is AwsException or ArgumentException) // ArgumentException: a name Lambda would refuse, refused here
        {
            output.WriteLine($"  {request.FunctionName} failed: {e.Message}");
            return false;
        }
    }

    private static async Task<int> FanOutAsync(LambdaClient client, DemoOptions options, string target, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        output.WriteLine($"Invoking {options.FunctionPattern} {options.Count} times, at most {options.Concurrency} at once, on {target}");
        var latencies = new double[options.Count];
        var firstResults = new SortedDictionary<long, string>();
        var firstFailures = new SortedDictionary<long, string>();
        int completed = 0, failures = 0;
        var progress = new ProgressPrinter(output, options.Count);
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var fanOut = new AwsFanOutOptions { MaxConcurrency = options.Concurrency, Progress = progress };
            await foreach (var outcome in client.InvokeEachAsync(Requests(options), fanOut, cancellationToken))
            {
                latencies[completed++] = outcome.Elapsed.TotalMilliseconds;
                if (outcome.Succeeded)
                {
                    if (outcome.Index < 5) firstResults[outcome.Index] = $"{outcome.Request.FunctionName} -> {outcome.Response.GetPayloadString()}";
                }
                else
                {
                    failures++;
                    // Keep the five lowest indices, so that the output does not depend on completion order.
                    if (firstFailures.Count < 5 || outcome.Index < firstFailures.Keys.Last())
                    {
                        firstFailures[outcome.Index] = $"{outcome.Request.FunctionName}: {outcome.Error.Message}";
                        if (firstFailures.Count > 5) firstFailures.Remove(firstFailures.Keys.Last());
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            error.WriteLine($"fanout: cancelled after {completed} of {options.Count} invocations.");
            return ExitFailures;
        }
        started.Stop();

        Array.Sort(latencies, 0, completed);
        double seconds = started.Elapsed.TotalSeconds;
        output.WriteLine("Summary");
        output.WriteLine($"  invocations: {completed}");
        output.WriteLine($"  failures:    {failures}");
        output.WriteLine(FormattableString.Invariant($"  latency:     p50 {Percentile(latencies, completed, 50):0.0} ms, p99 {Percentile(latencies, completed, 99):0.0} ms"));
        output.WriteLine(FormattableString.Invariant($"  throughput:  {completed / Math.Max(seconds, 1e-9):0} invocations/s ({completed} in {seconds:0.00} s)"));
        if (firstResults.Count > 0)
        {
            output.WriteLine("First results");
            foreach (var (index, text) in firstResults) output.WriteLine($"  [{index}] {text}");
        }
        if (firstFailures.Count > 0)
        {
            output.WriteLine("First failures");
            foreach (var (index, text) in firstFailures) output.WriteLine($"  [{index}] {text}");
        }
        return failures == 0 ? ExitSuccess : ExitFailures;
    }

    // Made one at a time as the fan-out reads them: a large --count never sits in memory.
    private static IEnumerable<LambdaRequest> Requests(DemoOptions options)
    {
        for (int i = 0; i < options.Count; i++)
        {
            string index = i.ToString(CultureInfo.InvariantCulture);
            yield return new LambdaRequest(options.FunctionPattern.Replace("{i}", index, StringComparison.Ordinal),
                Encoding.UTF8.GetBytes(options.PayloadTemplate.Replace("{i}", index, StringComparison.Ordinal)));
        }
    }

    // Nearest rank.
    private static double Percentile(double[] sorted, int count, int percent) =>
        count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(percent / 100.0 * count) - 1, 0, count - 1)];

    // Prints a line each time another tenth of the invocations has completed. Reports come from many threads.
    private sealed class ProgressPrinter(TextWriter output, int total) : IProgress<AwsFanOutProgress>
    {
        private readonly object _gate = new();
        private long _printedTenths;

        public void Report(AwsFanOutProgress value)
        {
            long tenths = value.Completed * 10 / Math.Max(total, 1);
            lock (_gate)
            {
                if (tenths <= _printedTenths) return;
                _printedTenths = tenths;
                output.WriteLine($"  {value.Completed}/{total} done, {value.Failed} failed, {value.InFlight} in flight");
            }
        }
    }

    private sealed class DemoOptions
    {
        private int? _count;

        public int Count => _count ?? (Stream ? 1 : 100);
        public int Concurrency { get; private set; } = 16;
        public string FunctionPattern { get; private set; } = "hello-world-{i}";
        public string PayloadTemplate { get; private set; } = """{"hello": {i}}""";
        public string? Region { get; private set; }
        public Uri? Endpoint { get; private set; }
        public string? Profile { get; private set; }
        public bool UseEmulator { get; private set; }
        public bool Stream { get; private set; }
        public bool Help { get; private set; }

        public static bool TryParse(string[] args, out DemoOptions options, out string? problem)
        {
            options = new DemoOptions();
            problem = null;
            for (int i = 0; i < args.Length; i++)
            {
                string arg = args[i];
                string? inlineValue = null;
                int eq = arg.IndexOf('=');
                if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
                {
                    inlineValue = arg[(eq + 1)..];
                    arg = arg[..eq];
                }
                switch (arg)
                {
                    case "--help" or "-h":
                        options.Help = true;
                        continue;
                    case "--emulator":
                        options.UseEmulator = true;
                        continue;
                    case "--stream":
                        options.Stream = true;
                        continue;
                    case "--count" or "--concurrency" or "--function-pattern" or "--payload-file" or "--region" or "--endpoint" or "--profile":
                        break;
                    default:
                        problem = $"unknown option '{arg}'.";
                        return false;
                }
                string? value = inlineValue ?? (i + 1 < args.Length ? args[++i] : null);
                if (string.IsNullOrWhiteSpace(value))
                {
                    problem = $"{arg} needs a value.";
                    return false;
                }
                problem = null;
                switch (arg)
                {
                    case "--count":
                        if (ParseInt(arg, value, 1, 10_000_000, ref problem) is { } count) options._count = count;
                        break;
                    case "--concurrency":
                        if (ParseInt(arg, value, 1, 10_000, ref problem) is { } concurrency) options.Concurrency = concurrency;
                        break;
                    case "--function-pattern":
                        options.FunctionPattern = value;
                        break;
                    case "--payload-file":
                        if (ReadPayload(value, ref problem) is { } payload) options.PayloadTemplate = payload;
                        break;
                    case "--region":
                        options.Region = value;
                        break;
                    case "--endpoint":
                        if (Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps))
                            options.Endpoint = uri;
                        else
                            problem = $"--endpoint must be an absolute http or https URL such as http://127.0.0.1:9001; it was '{value}'.";
                        break;
                    default:
                        options.Profile = value;
                        break;
                }
                if (problem is not null) return false;
            }
            return true;
        }

        private static int? ParseInt(string name, string value, int min, int max, ref string? problem)
        {
            if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= min && n <= max) return n;
            problem = $"{name} must be a whole number from {min} to {max}; it was '{value}'.";
            return null;
        }

        private static string? ReadPayload(string path, ref string? problem)
        {
            string text;
            try
            {
                text = File.ReadAllText(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                problem = $"--payload-file '{path}' cannot be read: {e.Message}";
                return null;
            }
            try
            {
                using var _ = JsonDocument.Parse(text.Replace("{i}", "0", StringComparison.Ordinal));
            }
            catch (JsonException e)
            {
                problem = $"--payload-file '{path}' is not JSON (with {{i}} read as 0): {e.Message}";
                return null;
            }
            return text;
        }
    }
}
