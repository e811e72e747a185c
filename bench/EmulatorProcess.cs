using System.Diagnostics;

namespace SigV4Lite.Bench;

/// <summary>
/// The Lambda emulator as a separate process (its Release build, <c>dotnet SigV4Lite.Emulator.dll --port 0
/// --no-verify</c>), so that its allocations and threads stay out of the measured process and signed and unsigned
/// requests are served the same way. Started per benchmark process, killed on dispose or exit.
/// </summary>
internal sealed class EmulatorProcess : IDisposable
{
    public const string BuildCommand = "dotnet build -c Release emulator/SigV4Lite.Emulator.csproj";

    private readonly Process _process;

    private EmulatorProcess(Process process, Uri endpoint)
    {
        _process = process;
        Endpoint = endpoint;
    }

    /// <summary>The emulator's base address, <c>http://127.0.0.1:port/</c>.</summary>
    public Uri Endpoint { get; }

    public int ProcessId => _process.Id;

    /// <summary>
    /// The environment variable that hands one running emulator to BenchmarkDotNet's benchmark processes, so that
    /// every benchmark meets the same, already warm emulator (see <see cref="StartShared"/>).
    /// </summary>
    public const string SharedUrlVariable = "SIGV4LITE_EMULATOR_URL";

    /// <summary>
    /// Starts the emulator for a BenchmarkDotNet run and warms it up (its JIT, with as many calls as a few
    /// benchmark iterations make); the benchmark processes, which inherit the environment, find it in
    /// <see cref="SharedUrlVariable"/>.
    /// </summary>
    public static EmulatorProcess StartShared(TextWriter output)
    {
        var emulator = Start();
        Environment.SetEnvironmentVariable(SharedUrlVariable, emulator.Endpoint.ToString());
        using var http = FanOutInput.FloorClient();
        FanOutInput.FloorAsync(http, emulator.Endpoint.ToString(), 30_000, FanOutBenchmarks.Concurrency).GetAwaiter().GetResult();
        output.WriteLine($"// Lambda emulator: pid {emulator.ProcessId}, {emulator.Endpoint} (--no-verify), warmed up with 30,000 calls");
        return emulator;
    }

    public static EmulatorProcess Start()
    {
        string dll = FindDll();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("--port");
        start.ArgumentList.Add("0");
        start.ArgumentList.Add("--no-verify");
        // GC settings given for the measured process (DOTNET_GCgen0size and the like) are not the emulator's.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("DOTNET_GC", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Kill(process);

        // First line: "Lambda emulator listening on http://127.0.0.1:NNNN/".
        string? line = process.StandardOutput.ReadLine();
        const string prefix = "Lambda emulator listening on ";
        if (line is null || !line.StartsWith(prefix, StringComparison.Ordinal))
        {
            string error = process.StandardError.ReadToEnd();
            Kill(process);
            throw new InvalidOperationException($"The emulator did not start: first line '{line}', stderr: {error}");
        }
        // The rest of its output (a few lines) is drained so that it never blocks on a full pipe.
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        return new EmulatorProcess(process, new Uri(line[prefix.Length..].Trim()));
    }

    // SIGV4LITE_EMULATOR_DLL, or emulator/bin/Release/net10.0/SigV4Lite.Emulator.dll above this program's directory
    // (BenchmarkDotNet runs its benchmark processes a few directories below bench/bin).
    private static string FindDll()
    {
        if (Environment.GetEnvironmentVariable("SIGV4LITE_EMULATOR_DLL") is { Length: > 0 } given)
            return File.Exists(given) ? given : throw new FileNotFoundException($"SIGV4LITE_EMULATOR_DLL names '{given}', which does not exist.");
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "SigV4Lite.csproj"))) continue;
            string dll = Path.Combine(dir.FullName, "emulator", "bin", "Release", "net10.0", "SigV4Lite.Emulator.dll");
            if (File.Exists(dll)) return dll;
            throw new FileNotFoundException($"The emulator's Release build is missing ({dll}); run `{BuildCommand}` from {dir.FullName} first.");
        }
        throw new FileNotFoundException($"No repository root (SigV4Lite.csproj) above {AppContext.BaseDirectory}; set SIGV4LITE_EMULATOR_DLL to the emulator's dll.");
    }

    internal static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill();
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException) { } // already gone
    }

    public void Dispose()
    {
        Kill(_process);
        _process.Dispose();
    }
}
