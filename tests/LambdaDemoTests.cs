using SigV4Lite.Samples;

namespace SigV4Lite.Tests;

/// <summary>The fan-out demo, run in process as a library call: its summary, results and exit codes.</summary>
[TestFixture]
public sealed class LambdaDemoTests
{
    private static readonly Func<string, string?> NoAwsEnvironment = _ => null;

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(Func<string, string?> environment, params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int exitCode = await FanOutDemo.RunAsync(args, output, error, environment);
        return (exitCode, output.ToString(), error.ToString());
    }

    [Test]
    public async Task Default_FansOutAHundredInvocations_ToTheInProcessEmulator()
    {
        var (exitCode, output, error) = await RunAsync(NoAwsEnvironment);

        Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitSuccess), error);
        Assert.That(output, Does.Contain("Invoking hello-world-{i} 100 times, at most 16 at once, on the in-process emulator at http://127.0.0.1:"));
        Assert.That(output, Does.Contain("  100/100 done, 0 failed, 0 in flight"));
        Assert.That(output, Does.Contain("  invocations: 100\n").Or.Contain("  invocations: 100\r\n"));
        Assert.That(output, Does.Contain("  failures:    0"));
        Assert.That(output, Does.Match(@"latency:     p50 \d+\.\d ms, p99 \d+\.\d ms"));
        Assert.That(output, Does.Match(@"throughput:  \d+ invocations/s \(100 in \d+\.\d\d s\)"));
        Assert.That(output, Does.Contain("""  [0] hello-world-0 -> {"function":"hello-world-0","payload":{"hello": 0}}"""));
        Assert.That(output, Does.Contain("""  [4] hello-world-4 -> {"function":"hello-world-4","payload":{"hello": 4}}"""));
        Assert.That(output, Does.Not.Contain("[5]"), "a few results, not all");
        Assert.That(error, Is.Empty);
    }

    [Test]
    public async Task Options_SetCountConcurrencyPatternAndPayload()
    {
        string payloadFile = Path.GetTempFileName();
        try
        {
            File.WriteAllText(payloadFile, """{"order": {i}, "items": ["a", "b"]}""");

            var (exitCode, output, error) = await RunAsync(NoAwsEnvironment,
                "--count", "30", "--concurrency=3", "--function-pattern", "orders-{i}", "--payload-file", payloadFile);

            Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitSuccess), error);
            Assert.That(output, Does.Contain("Invoking orders-{i} 30 times, at most 3 at once"));
            Assert.That(output, Does.Contain("  invocations: 30"));
            Assert.That(output, Does.Contain("""  [2] orders-2 -> {"function":"orders-2","payload":{"order": 2, "items": ["a", "b"]}}"""));
        }
        finally
        {
            File.Delete(payloadFile);
        }
    }

    [Test]
    public async Task Failures_AreCountedAndShown_AndTheExitCodeIsOne()
    {
        // A space is not allowed in a function name: each invocation is refused before it is sent.
        var (exitCode, output, _) = await RunAsync(NoAwsEnvironment, "--count", "12", "--function-pattern", "bad name {i}");

        Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitFailures));
        Assert.That(output, Does.Contain("  invocations: 12"));
        Assert.That(output, Does.Contain("  failures:    12"));
        Assert.That(output, Does.Contain("First failures"));
        Assert.That(output, Does.Contain("[0] bad name 0: The function name 'bad name 0' is not one Lambda takes"));
    }

    [Test]
    public async Task Stream_PrintsEachChunkAsItArrives()
    {
        var (exitCode, output, error) = await RunAsync(NoAwsEnvironment, "--stream");

        Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitSuccess), error);
        Assert.That(output, Does.Contain("Streaming hello-world-{i} 1 time, one at a time, on the in-process emulator at http://127.0.0.1:"));
        var chunks = System.Text.RegularExpressions.Regex.Matches(output, @"^  hello-world-0 \+(\d+) ms: (.*?)\r?$", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.That(chunks, Has.Count.EqualTo(4), "the emulator's echo streams four chunks");
        Assert.That(string.Concat(chunks.Select(m => m.Groups[2].Value)), Is.EqualTo("""{"function":"hello-world-0","payload":{"hello": 0}}"""));
        var times = chunks.Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.That(times[3] - times[0], Is.GreaterThanOrEqualTo(40), "the chunks were printed as they came, 50 ms apart, not all at the end");
        Assert.That(output, Does.Match(@"  hello-world-0 done: 4 chunks, 51 bytes in \d+ ms"));
        Assert.That(output, Does.Contain("  streams:  1").And.Contain("  failures: 0"));
        Assert.That(output, Does.Not.Contain("hello-world-1"), "one stream unless --count says more");
    }

    [Test]
    public async Task Stream_WithCount_StreamsEachInTurn()
    {
        var (exitCode, output, error) = await RunAsync(NoAwsEnvironment, "--stream", "--count", "3", "--function-pattern", "ticker-{i}");

        Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitSuccess), error);
        Assert.That(output, Does.Contain("Streaming ticker-{i} 3 times, one at a time"));
        int[] done = Enumerable.Range(0, 3).Select(i => output.IndexOf($"  ticker-{i} done: 4 chunks", StringComparison.Ordinal)).ToArray();
        Assert.That(done, Is.All.GreaterThan(0));
        Assert.That(done, Is.Ordered, "one stream after the other");
        Assert.That(output.IndexOf("  ticker-1 +", StringComparison.Ordinal), Is.GreaterThan(done[0]), "the next stream starts after the one before ends");
        Assert.That(output, Does.Contain("  streams:  3"));
    }

    [Test]
    public async Task Stream_Failures_AreShown_AndTheExitCodeIsOne()
    {
        var (exitCode, output, _) = await RunAsync(NoAwsEnvironment, "--stream", "--count", "2", "--function-pattern", "bad name {i}");

        Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitFailures));
        Assert.That(output, Does.Contain("  bad name 0 failed: The function name 'bad name 0' is not one Lambda takes"));
        Assert.That(output, Does.Contain("  bad name 1 failed: "));
        Assert.That(output, Does.Contain("  streams:  2").And.Contain("  failures: 2"));
    }

    [TestCase(new[] { "--count", "abc" }, "--count must be a whole number from 1 to 10000000; it was 'abc'")]
    [TestCase(new[] { "--count", "0" }, "--count must be a whole number from 1 to 10000000; it was '0'")]
    [TestCase(new[] { "--concurrency", "-4" }, "--concurrency must be a whole number from 1 to 10000; it was '-4'")]
    [TestCase(new[] { "--count" }, "--count needs a value")]
    [TestCase(new[] { "--function-pattern", " " }, "--function-pattern needs a value")]
    [TestCase(new[] { "--frobnicate" }, "unknown option '--frobnicate'")]
    [TestCase(new[] { "--payload-file", "/no/such/file.json" }, "--payload-file '/no/such/file.json' cannot be read")]
    [TestCase(new[] { "--endpoint", "lambda.local" }, "--endpoint must be an absolute http or https URL")]
    public async Task BadOptions_ExitWithTwo_AndSayWhatIsWrong(string[] args, string expected)
    {
        var (exitCode, output, error) = await RunAsync(NoAwsEnvironment, args);

        Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitBadOptions));
        Assert.That(error, Does.Contain(expected));
        Assert.That(error, Does.Contain("Usage:"));
        Assert.That(output, Is.Empty, "nothing was invoked");
    }

    [Test]
    public async Task PayloadFileThatIsNotJson_ExitsWithTwo()
    {
        string payloadFile = Path.GetTempFileName();
        try
        {
            File.WriteAllText(payloadFile, "hello {i}");

            var (exitCode, _, error) = await RunAsync(NoAwsEnvironment, "--payload-file", payloadFile);

            Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitBadOptions));
            Assert.That(error, Does.Contain("is not JSON"));
        }
        finally
        {
            File.Delete(payloadFile);
        }
    }

    [Test]
    public async Task Help_PrintsUsage()
    {
        var (exitCode, output, _) = await RunAsync(NoAwsEnvironment, "--help");

        Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitSuccess));
        Assert.That(output, Does.Contain("--function-pattern").And.Contain("Exit codes"));
    }

    // --profile selects a profile of the shared config files (here one whose region and endpoint_url point to an
    // emulator on loopback), without touching the process environment.
    [Test]
    public async Task Profile_IsUsedForRegionEndpointAndCredentials_WithoutSettingAwsProfile()
    {
        await using var emulator = await SigV4Lite.Emulator.LambdaEmulator.StartAsync(
            new SigV4Lite.Emulator.LambdaEmulatorOptions { EchoUnknownFunctions = true, Region = "eu-north-1" });
        using var home = new TempHome();
        home.WriteConfig($"[profile demo]\nregion = eu-north-1\nendpoint_url = {emulator.Endpoint}\n");
        home.WriteCredentials("[demo]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n");
        string? processProfile = Environment.GetEnvironmentVariable("AWS_PROFILE");

        var (exitCode, output, error) = await RunAsync(name => name == "HOME" ? home.Directory : null, "--count", "3", "--profile", "demo");

        Assert.That(exitCode, Is.EqualTo(FanOutDemo.ExitSuccess), error);
        Assert.That(output, Does.Contain($"on AWS Lambda at {emulator.Endpoint} (eu-north-1)"));
        Assert.That(emulator.Counters.Requests, Is.EqualTo(3));
        Assert.That(Environment.GetEnvironmentVariable("AWS_PROFILE"), Is.EqualTo(processProfile));
    }

    // AWS configuration in the environment sends the demo to AWS (here an endpoint nothing listens on, on loopback);
    // --emulator overrides it.
    [Test]
    public async Task AwsConfiguration_SelectsAws_UnlessEmulatorIsAsked()
    {
        // Credentials from the chain find none (no home directory, no instance metadata) and never leave this machine.
        var values = new Dictionary<string, string>
        {
            ["AWS_REGION"] = "us-east-1",
            ["AWS_EC2_METADATA_DISABLED"] = "true",
            ["HOME"] = Path.Combine(Path.GetTempPath(), "sigv4lite-no-such-home"),
        };
        Func<string, string?> awsEnvironment = values.GetValueOrDefault;

        var (awsExit, awsOutput, _) = await RunAsync(awsEnvironment, "--count", "1", "--endpoint", "http://127.0.0.1:9/", "--region", "us-east-1");
        var (localExit, localOutput, _) = await RunAsync(awsEnvironment, "--count", "1", "--emulator");

        Assert.That(awsOutput, Does.Contain("on AWS Lambda at http://127.0.0.1:9/ (us-east-1)"));
        Assert.That(awsExit, Is.EqualTo(FanOutDemo.ExitFailures));
        Assert.That(localOutput, Does.Contain("on the in-process emulator"));
        Assert.That(localExit, Is.EqualTo(FanOutDemo.ExitSuccess));
    }
}
