using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace SigV4Lite.Emulator;

// The command line: dotnet run --project emulator -- --port 9001 [--access-key-id X --secret-access-key Y]
// [--region us-east-1] [--max-connections 1000] [--no-verify] [--strict]. Exit codes: 0 stopped cleanly, 1 could not start, 2 bad options.
internal static class EmulatorProgram
{
    internal const string Usage = """
        Usage: SigV4Lite.Emulator [--port 9001] [--access-key-id ID --secret-access-key SECRET] [--region us-east-1]
                                  [--max-connections 1000] [--no-verify] [--strict]
          --port N               port on 127.0.0.1 (default 9001; 0 picks a free one)
          --access-key-id ID     accept this key pair too (with --secret-access-key); AKIDEXAMPLE is always accepted
          --secret-access-key S  the secret of --access-key-id
          --region R             the region signatures must be scoped to (default us-east-1)
          --max-connections N    the most connections open at once (default 1000); more are closed at once
          --no-verify            serve unsigned requests too
          --strict               only the function 'echo' exists; other names answer 404 ResourceNotFoundException
                                 (by default every function name echoes its payload)
        """;

    public static async Task<int> Main(string[] args)
    {
        var stop = new CancellationTokenSource(); // not disposed: a late Ctrl+C may still cancel it
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });
        return await RunAsync(args, Console.Out, Console.Error, stop.Token).ConfigureAwait(false);
    }

    // Runs until the token is cancelled; returns the exit code.
    internal static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken stop)
    {
        if (Array.Exists(args, a => a is "--help" or "-h"))
        {
            output.WriteLine(Usage);
            return 0;
        }
        if (!TryParse(args, out var settings, out string? problem))
        {
            error.WriteLine("error: " + problem);
            error.WriteLine(Usage);
            return 2;
        }

        LambdaEmulator emulator;
        try
        {
            emulator = await LambdaEmulator.StartAsync(settings.Options, stop).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            error.WriteLine($"error: cannot listen on 127.0.0.1:{settings.Options.Port}: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
        await using (emulator.ConfigureAwait(false))
        {
            if (settings.Strict) emulator.AddEcho("echo");
            var options = emulator.Options;
            output.WriteLine($"Lambda emulator listening on {emulator.Endpoint}");
            output.WriteLine(options.VerifySignatures
                ? $"  signatures verified for region {options.Region}, access key ids: {string.Join(", ", options.Credentials.Keys)}"
                : $"  signatures not verified (--no-verify); region {options.Region}");
            output.WriteLine(settings.Strict
                ? "  functions: 'echo' only (--strict); other names answer 404 ResourceNotFoundException"
                : "  functions: every name echoes {\"function\":name,\"payload\":payload}");
            output.WriteLine("  Press Ctrl+C to stop.");
            output.Flush();
            try
            {
                await Task.Delay(Timeout.Infinite, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C or SIGTERM: stop cleanly.
            }
        }
        return 0;
    }

    internal sealed record Settings(LambdaEmulatorOptions Options, bool Strict);

    internal static bool TryParse(string[] args, out Settings settings, out string? problem)
    {
        settings = null!;
        int port = 9001, maxConnections = LambdaEmulatorOptions.DefaultMaxConcurrentConnections;
        string region = "us-east-1";
        string? accessKeyId = null, secret = null;
        bool verify = true, strict = false;
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            string? inline = null;
            if (arg.StartsWith("--", StringComparison.Ordinal) && arg.IndexOf('=') is int eq and > 0)
            {
                inline = arg[(eq + 1)..];
                arg = arg[..eq];
            }
            switch (arg)
            {
                case "--no-verify" when inline is null: verify = false; break;
                case "--strict" when inline is null: strict = true; break;
                case "--port":
                case "--region":
                case "--max-connections":
                case "--access-key-id":
                case "--secret-access-key":
                    string? value = inline ?? (i + 1 < args.Length ? args[++i] : null);
                    if (string.IsNullOrEmpty(value) || (inline is null && value.StartsWith("--", StringComparison.Ordinal)))
                    {
                        problem = $"{arg} needs a value.";
                        return false;
                    }
                    if (arg == "--port")
                    {
                        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port > 65535)
                        {
                            problem = $"--port '{value}' is not a port number; give 0 to 65535 (0 picks a free port).";
                            return false;
                        }
                    }
                    else if (arg == "--max-connections")
                    {
                        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out maxConnections) || maxConnections < 1)
                        {
                            problem = $"--max-connections '{value}' is not a number of connections; give 1 or more.";
                            return false;
                        }
                    }
                    else if (arg == "--region")
                    {
                        if (!IsRegion(value))
                        {
                            problem = $"--region '{value}' is not a region; give one such as us-east-1.";
                            return false;
                        }
                        region = value;
                    }
                    else if (arg == "--access-key-id") accessKeyId = value;
                    else secret = value;
                    break;
                default:
                    problem = $"unknown option '{args[i]}'; see the usage below.";
                    return false;
            }
        }
        if ((accessKeyId is null) != (secret is null))
        {
            problem = accessKeyId is null
                ? "--secret-access-key needs --access-key-id as well."
                : "--access-key-id needs --secret-access-key as well.";
            return false;
        }
        var credentials = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [LambdaEmulatorOptions.ExampleAccessKeyId] = LambdaEmulatorOptions.ExampleSecretAccessKey,
        };
        if (accessKeyId is not null) credentials[accessKeyId] = secret!;
        settings = new Settings(new LambdaEmulatorOptions
        {
            Port = port,
            Region = region,
            Credentials = credentials,
            MaxConcurrentConnections = maxConnections,
            VerifySignatures = verify,
            EchoUnknownFunctions = !strict,
        }, strict);
        problem = null;
        return true;
    }

    private static bool IsRegion(string value)
    {
        foreach (char c in value)
            if (!char.IsAsciiLetterLower(c) && !char.IsAsciiDigit(c) && c != '-') return false;
        return value.Length > 0;
    }
}
