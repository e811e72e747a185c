using System.Diagnostics;
using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace SigV4Lite.Tests;

/// <summary>
/// Two class libraries that each compile SigV4.cs and SigV4Verifier.cs (as a copy or a source-only package gives
/// them), and an app that references both and has a third copy: the app builds with warnings as errors (no CS0436,
/// no CS0433), all three copies sign alike, and neither library exposes a SigV4Lite type.
/// </summary>
public class TwoCopiesTests
{
    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SigV4.cs")) && File.Exists(Path.Combine(dir.FullName, "SigV4Lite.csproj")))
                return dir.FullName;
        throw new InvalidOperationException("The repository root (with SigV4.cs) is not above " + TestContext.CurrentContext.TestDirectory);
    }

    private static string Project(string sources, string? references = null) => $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <TargetFramework>net10.0</TargetFramework>
            <Nullable>enable</Nullable>
            <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
            <EnableDefaultCompileItems>false</EnableDefaultCompileItems>
            {(references is null ? "" : "<OutputType>Exe</OutputType>")}
          </PropertyGroup>
          <ItemGroup>
            <Compile Include="*.cs" />
            <Compile Include="{sources}/SigV4.cs" />
            <Compile Include="{sources}/SigV4Verifier.cs" />
            {references}
          </ItemGroup>
        </Project>
        """;

    private static string Library(string name) => $$"""
        using System;
        using System.Collections.Generic;
        using SigV4Lite;

        namespace {{name}};

        public static class Signer
        {
            private static readonly AwsCredentials Credentials = new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");

            public static string Authorization(DateTimeOffset time) =>
                SigV4.Sign("GET", "/", "", [new("Host", "example.amazonaws.com")], SigV4.EmptyPayloadHash, time, Credentials,
                    new SigV4Options("service", "us-east-1")).Authorization!;

            public static bool Verifies(string authorization, DateTimeOffset time)
            {
                var verifier = new SigV4Verifier(_ => Credentials, new SigV4Options("service", "us-east-1")) { Clock = new Fixed(time) };
                var headers = new List<KeyValuePair<string, string>>
                {
                    new("Host", "example.amazonaws.com"), new("X-Amz-Date", "20150830T123600Z"), new("Authorization", authorization),
                };
                return verifier.Verify("GET", "/", "", headers, []).IsValid;
            }

            private sealed class Fixed(DateTimeOffset now) : TimeProvider
            {
                public override DateTimeOffset GetUtcNow() => now;
            }
        }
        """;

    private const string App = """
        using System;
        using SigV4Lite;

        var time = new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero);
        string own = SigV4.Sign("GET", "/", "", [new("Host", "example.amazonaws.com")], SigV4.EmptyPayloadHash, time,
            new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), new SigV4Options("service", "us-east-1")).Authorization!;
        Console.WriteLine(LibA.Signer.Authorization(time) == own && LibB.Signer.Authorization(time) == own ? "same" : "different");
        Console.WriteLine(LibA.Signer.Verifies(LibB.Signer.Authorization(time), time) && LibB.Signer.Verifies(own, time) ? "verified" : "rejected");
        """;

    [Test]
    public void AppWithTwoLibrariesThatEmbedTheSources_BuildsWithoutConflictsAndExposesNothing()
    {
        string sources = RepositoryRoot();
        string work = Directory.CreateTempSubdirectory("sigv4lite-two-copies-").FullName;
        try
        {
            foreach (var name in new[] { "LibA", "LibB" })
            {
                Directory.CreateDirectory(Path.Combine(work, name));
                File.WriteAllText(Path.Combine(work, name, name + ".csproj"), Project(sources));
                File.WriteAllText(Path.Combine(work, name, "Signer.cs"), Library(name));
            }
            Directory.CreateDirectory(Path.Combine(work, "App"));
            File.WriteAllText(Path.Combine(work, "App", "App.csproj"),
                Project(sources, """<ProjectReference Include="../LibA/LibA.csproj" /><ProjectReference Include="../LibB/LibB.csproj" />"""));
            File.WriteAllText(Path.Combine(work, "App", "Program.cs"), App);

            string output = Path.Combine(work, "out");
            var (exit, log) = Run(work, "dotnet", "build", "App/App.csproj", "-c", "Release", "-o", output, "-nodeReuse:false", "-p:UseSharedCompilation=false");
            Assert.That(exit, Is.EqualTo(0), log);
            Assert.That(log, Does.Not.Contain("CS0436").And.Not.Contain("CS0433").And.Not.Contain("warning"));

            var (runExit, runOutput) = Run(work, "dotnet", Path.Combine(output, "App.dll"));
            Assert.That(runExit, Is.EqualTo(0), runOutput);
            Assert.That(runOutput.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "same", "verified" }));

            foreach (var library in new[] { "LibA.dll", "LibB.dll" })
            {
                var types = SigV4LiteTypes(Path.Combine(output, library));
                Assert.That(types, Does.Contain("SigV4").And.Contain("SigV4Verifier").And.Contain("SigV4Handler"), $"{library} embeds the sources");
                Assert.That(PublicTypes(Path.Combine(output, library)), Is.Empty, $"{library} exposes no SigV4Lite type");
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    // The check above finds public types where there are some: the library itself is built with SIGV4LITE_PUBLIC.
    [Test]
    public void TheLibraryBuiltWithThePublicSwitch_ExposesItsTypes() =>
        Assert.That(PublicTypes(typeof(SigV4).Assembly.Location), Does.Contain("SigV4").And.Contain("SigV4Verifier").And.Contain("AwsCredentials"));

    private static List<string> SigV4LiteTypes(string assembly) => Types(assembly, publicOnly: false);

    private static List<string> PublicTypes(string assembly) => Types(assembly, publicOnly: true);

    // Top-level types of the SigV4Lite namespace, read from the metadata without loading the assembly.
    private static List<string> Types(string assembly, bool publicOnly)
    {
        using var pe = new PEReader(File.OpenRead(assembly));
        var metadata = pe.GetMetadataReader();
        var names = new List<string>();
        foreach (var handle in metadata.TypeDefinitions)
        {
            var type = metadata.GetTypeDefinition(handle);
            if (metadata.GetString(type.Namespace) != "SigV4Lite") continue;
            if (publicOnly && (type.Attributes & TypeAttributes.VisibilityMask) != TypeAttributes.Public) continue;
            names.Add(metadata.GetString(type.Name));
        }
        return names;
    }

    private static (int ExitCode, string Output) Run(string directory, string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        // The test host's MSBuild settings would point the inner build at the test run's own build.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', arguments)} did not finish in 3 minutes");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
