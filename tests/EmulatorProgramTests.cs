using System.Diagnostics;
using System.Net;
using System.Text;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.EmulatorTestSupport;

namespace SigV4Lite.Tests;

/// <summary>The emulator's command line: options, exit codes, and the standalone program.</summary>
public class EmulatorProgramTests
{
    [TestCase("--port abc", "--port 'abc' is not a port number")]
    [TestCase("--port 70000", "--port '70000' is not a port number")]
    [TestCase("--port", "--port needs a value")]
    [TestCase("--region --strict", "--region needs a value")]
    [TestCase("--region US_EAST", "--region 'US_EAST' is not a region")]
    [TestCase("--max-connections 0", "--max-connections '0' is not a number of connections; give 1 or more")]
    [TestCase("--max-connections many", "--max-connections 'many' is not a number of connections")]
    [TestCase("--access-key-id AKIDONLY", "--access-key-id needs --secret-access-key as well")]
    [TestCase("--secret-access-key s3cr3t", "--secret-access-key needs --access-key-id as well")]
    [TestCase("--verbose", "unknown option '--verbose'")]
    [TestCase("9001", "unknown option '9001'")]
    public async Task RefusesBadOptionsWithAMessageAndExitCode2(string arguments, string expected)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = await EmulatorProgram.RunAsync(arguments.Split(' '), output, error, CancellationToken.None);
        Assert.That(exitCode, Is.EqualTo(2));
        Assert.That(error.ToString(), Does.StartWith("error: " + expected).And.Contain("Usage:"));
        Assert.That(error.ToString(), Does.Not.Contain("s3cr3t"));
        Assert.That(output.ToString(), Is.Empty);
    }

    [Test]
    public async Task PrintsUsageForHelp()
    {
        var output = new StringWriter();
        Assert.That(await EmulatorProgram.RunAsync(["--help"], output, new StringWriter(), CancellationToken.None), Is.Zero);
        Assert.That(output.ToString(), Does.Contain("--port").And.Contain("--access-key-id").And.Contain("--strict").And.Contain("--no-verify").And.Contain("--max-connections"));
    }

    [Test]
    public void ParsesEveryOption()
    {
        Assert.That(EmulatorProgram.TryParse(["--port=0", "--region", "eu-central-1", "--access-key-id", "AKIDCLI", "--secret-access-key", "cli/secret", "--no-verify", "--strict", "--max-connections", "64"],
            out var settings, out string? problem), Is.True, problem);
        Assert.That(settings.Options.MaxConcurrentConnections, Is.EqualTo(64));
        Assert.That(settings.Options.Port, Is.Zero);
        Assert.That(settings.Options.Region, Is.EqualTo("eu-central-1"));
        Assert.That(settings.Options.VerifySignatures, Is.False);
        Assert.That(settings.Options.EchoUnknownFunctions, Is.False);
        Assert.That(settings.Strict, Is.True);
        Assert.That(settings.Options.Credentials, Is.EquivalentTo(new Dictionary<string, string>
        {
            ["AKIDEXAMPLE"] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ["AKIDCLI"] = "cli/secret",
        }));

        Assert.That(EmulatorProgram.TryParse([], out var defaults, out _), Is.True);
        Assert.That(defaults.Options.Port, Is.EqualTo(9001));
        Assert.That(defaults.Options.Region, Is.EqualTo("us-east-1"));
        Assert.That(defaults.Options.MaxConcurrentConnections, Is.EqualTo(1000));
        Assert.That(defaults.Options.VerifySignatures, Is.True);
        Assert.That(defaults.Options.EchoUnknownFunctions, Is.True, "standalone, every name echoes");
    }

    [Test]
    public async Task RunsUntilStoppedAcceptingTheGivenKeyAndOnlyEchoWhenStrict()
    {
        var output = new RecordingWriter();
        using var stop = new CancellationTokenSource();
        var run = EmulatorProgram.RunAsync(["--port", "0", "--strict", "--access-key-id", "AKIDCLI", "--secret-access-key", "cli/secret"], output, new StringWriter(), stop.Token);
        var endpoint = new Uri(await output.FirstLineAsync().WaitAsync(Patience) is var line && line.StartsWith("Lambda emulator listening on ", StringComparison.Ordinal)
            ? line["Lambda emulator listening on ".Length..] : throw new AssertionException("unexpected first line: " + line));

        using var client = new HttpClient(new SigV4Handler(new AwsCredentials("AKIDCLI", "cli/secret"), new SigV4Options("lambda", "us-east-1"))) { BaseAddress = endpoint };
        using (var echo = await client.SendAsync(Invoke("echo", "[1]")))
            Assert.That(await echo.Content.ReadAsStringAsync(), Is.EqualTo("{\"function\":\"echo\",\"payload\":[1]}"));
        using (var other = await client.SendAsync(Invoke("other")))
            await AssertAwsErrorAsync(other, HttpStatusCode.NotFound, "ResourceNotFoundException");
        Assert.That(output.Text, Does.Contain("AKIDCLI").And.Not.Contain("cli/secret"));

        stop.Cancel();
        Assert.That(await run.WaitAsync(Patience), Is.Zero);
    }

    [Test]
    public async Task ExitsWith1WhenThePortIsTaken()
    {
        await using var taken = await LambdaEmulator.StartAsync();
        var error = new StringWriter();
        int exitCode = await EmulatorProgram.RunAsync(["--port", taken.Endpoint.Port.ToString()], new StringWriter(), error, CancellationToken.None);
        Assert.That(exitCode, Is.EqualTo(1));
        Assert.That(error.ToString(), Does.StartWith($"error: cannot listen on 127.0.0.1:{taken.Endpoint.Port}"));
    }

    [Test]
    public async Task RunsStandaloneAndEchoesAnyFunction()
    {
        string program = Path.Combine(AppContext.BaseDirectory, "SigV4Lite.Emulator.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { program, "--port", "0" }) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        try
        {
            string? line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.That(line, Does.Match(@"^Lambda emulator listening on http://127\.0\.0\.1:\d+/$"), process.HasExited ? process.StandardError.ReadToEnd() : line);
            var endpoint = new Uri(line!["Lambda emulator listening on ".Length..]);
            using var client = new HttpClient(new SigV4Handler(ExampleCredentials, new SigV4Options("lambda", "us-east-1"))) { BaseAddress = endpoint };
            using var response = await client.SendAsync(Invoke("123456789012:function:any-name", "{\"ok\":true}"));
            Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("{\"function\":\"any-name\",\"payload\":{\"ok\":true}}"));
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync();
        }
    }

    // A writer the running program writes to while the test reads it.
    private sealed class RecordingWriter : TextWriter
    {
        private readonly StringBuilder _text = new();
        private readonly TaskCompletionSource<string> _firstLine = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override Encoding Encoding => Encoding.UTF8;

        public string Text { get { lock (_text) return _text.ToString(); } }

        public Task<string> FirstLineAsync() => _firstLine.Task;

        public override void Write(char value)
        {
            lock (_text)
            {
                _text.Append(value);
                if (value == '\n' && !_firstLine.Task.IsCompleted) _firstLine.SetResult(_text.ToString().TrimEnd());
            }
        }
    }
}
