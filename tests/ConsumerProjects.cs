using System.Diagnostics;
using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace SigV4Lite.Tests;

/// <summary>
/// Throwaway projects that consume the library the ways a user can (copied files, the source package, the compiled
/// package), built and run with the dotnet CLI: the projects, two class libraries and an app that uses both, and how
/// to read which SigV4Lite types an output assembly holds and exposes.
/// </summary>
internal static class ConsumerProjects
{
    public const string GetVanillaSignature = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SigV4.cs")) && File.Exists(Path.Combine(dir.FullName, "SigV4Lite.csproj")))
                return dir.FullName;
        throw new InvalidOperationException("The repository root (with SigV4.cs) is not above " + TestContext.CurrentContext.TestDirectory);
    }

    /// <summary>A project with warnings as errors; <paramref name="items"/> is what it takes of SigV4Lite (Compile
    /// items of copied files, or a PackageReference), an executable when it references other projects or says so.</summary>
    public static string Project(string items, string? references = null, string targetFrameworks = "net10.0", bool exe = false, string properties = "") => $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <TargetFrameworks>{targetFrameworks}</TargetFrameworks>
            <Nullable>enable</Nullable>
            <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
            <EnableDefaultCompileItems>false</EnableDefaultCompileItems>
            {(references is null && !exe ? "" : "<OutputType>Exe</OutputType>")}
            {properties}
          </PropertyGroup>
          <ItemGroup>
            <Compile Include="*.cs" />
            {items}
            {references}
          </ItemGroup>
        </Project>
        """;

    public static string CopiedFiles(string sources, params string[] files) =>
        string.Concat(files.Select(file => $"""<Compile Include="{sources}/{file}" />"""));

    public static string LibraryReferences(params string[] names) =>
        string.Concat(names.Select(name => $"""<ProjectReference Include="../{name}/{name}.csproj" />"""));

    /// <summary>Writes the project and its one source file into work/name.</summary>
    public static void Write(string work, string name, string project, string source)
    {
        Directory.CreateDirectory(Path.Combine(work, name));
        File.WriteAllText(Path.Combine(work, name, name + ".csproj"), project);
        File.WriteAllText(Path.Combine(work, name, "Program.cs"), source);
    }

    /// <summary>A class library whose public API uses SigV4Lite only inside: it signs and verifies the suite's
    /// get-vanilla request.</summary>
    public static string Library(string name) => $$"""
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

    /// <summary>An app over LibA and LibB that signs with its own SigV4Lite too: prints its signature of the suite's
    /// get-vanilla case, "same" and "verified".</summary>
    public const string TwoLibrariesApp = """
        using System;
        using SigV4Lite;

        var time = new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero);
        var signature = SigV4.Sign("GET", "/", "", [new("Host", "example.amazonaws.com")], SigV4.EmptyPayloadHash, time,
            new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), new SigV4Options("service", "us-east-1"));
        Console.WriteLine(signature.Signature);
        string own = signature.Authorization!;
        Console.WriteLine(LibA.Signer.Authorization(time) == own && LibB.Signer.Authorization(time) == own ? "same" : "different");
        Console.WriteLine(LibA.Signer.Verifies(LibB.Signer.Authorization(time), time) && LibB.Signer.Verifies(own, time) ? "verified" : "rejected");
        """;

    /// <summary>Builds LibA and LibB (each with <paramref name="libraryItems"/>) and an app over both (with
    /// <paramref name="appItems"/>) in work, and checks them (<see cref="CheckTwoLibraries"/>).</summary>
    public static void BuildAndCheckTwoLibraries(string work, string libraryItems, string appItems)
    {
        WriteTwoLibraries(work, libraryItems, appItems);
        string output = Path.Combine(work, "out");
        var (exit, log) = Run(work, "dotnet", "build", "App/App.csproj", "-c", "Release", "-o", output, "-nodeReuse:false", "-p:UseSharedCompilation=false");
        CheckTwoLibraries(exit, log, output);
    }

    public static void WriteTwoLibraries(string work, string libraryItems, string appItems, string libraryFramework = "net10.0", string properties = "")
    {
        foreach (var name in new[] { "LibA", "LibB" })
            Write(work, name, Project(libraryItems, targetFrameworks: libraryFramework, properties: properties), Library(name));
        Write(work, "App", Project(appItems, LibraryReferences("LibA", "LibB"), properties: properties), TwoLibrariesApp);
    }

    /// <summary>The build was clean (no CS0436, no CS0433, no warning), the app in output prints the suite's
    /// signature, "same" and "verified", and neither library exposes a SigV4Lite type though each holds them.</summary>
    public static void CheckTwoLibraries(int buildExitCode, string buildLog, string output)
    {
        Assert.That(buildExitCode, Is.EqualTo(0), buildLog);
        Assert.That(buildLog, Does.Not.Contain("CS0436").And.Not.Contain("CS0433").And.Not.Contain("warning"));

        var (runExit, runOutput) = Run(output, "dotnet", Path.Combine(output, "App.dll"));
        Assert.That(runExit, Is.EqualTo(0), runOutput);
        Assert.That(Lines(runOutput), Is.EqualTo(new[] { GetVanillaSignature, "same", "verified" }));

        foreach (var library in new[] { "LibA.dll", "LibB.dll" })
        {
            var types = SigV4LiteTypes(Path.Combine(output, library));
            Assert.That(types, Does.Contain("SigV4").And.Contain("SigV4Verifier").And.Contain("SigV4Handler"), $"{library} embeds the sources");
            Assert.That(PublicTypes(Path.Combine(output, library)), Is.Empty, $"{library} exposes no SigV4Lite type");
        }
    }

    public static string[] Lines(string output) => output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    public static List<string> SigV4LiteTypes(string assembly) => Types(assembly, publicOnly: false);

    public static List<string> PublicTypes(string assembly) => Types(assembly, publicOnly: true);

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

    /// <summary>Runs a command to its end (3 minutes at most) and returns its exit code and output.</summary>
    public static (int ExitCode, string Output) Run(string directory, string file, params string[] arguments) =>
        Run(directory, new Dictionary<string, string>(), file, arguments);

    public static (int ExitCode, string Output) Run(string directory, IReadOnlyDictionary<string, string> environment, string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        // The test host's MSBuild settings would point the inner build at the test run's own build.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (name, value) in environment) start.Environment[name] = value;
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
