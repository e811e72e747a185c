using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;
using static SigV4Lite.Tests.ConsumerProjects;

namespace SigV4Lite.Tests;

/// <summary>
/// The two packages as a user gets them: packed once into a local folder feed, then taken by throwaway projects that
/// are built together in one go (net8.0 reference assemblies come from NuGet: this machine has only the .NET 10
/// runtime) and run. The compiled package gives a net8.0 and a net10.0 app that sign a suite case. Two net8.0
/// libraries take the source package, and so does the net10.0 app over both, which signs the case alike with all
/// three copies. SigV4.cs copied alone into a fresh net8.0 project signs it too. (Each project that takes the source
/// package compiles the whole library: three such builds are the most of this fixture's time.)
/// </summary>
[NonParallelizable]
public class PackageTests
{
    private const string Version = "0.1.0";

    // Signs the suite's get-vanilla case and says where SigV4Lite came from: the assembly, for which framework, and
    // whether its types are public.
    private const string SigningApp = """
        using System;
        using System.Reflection;
        using System.Runtime.Versioning;
        using SigV4Lite;

        var signature = SigV4.Sign("GET", "/", "", [new("Host", "example.amazonaws.com")], SigV4.EmptyPayloadHash,
            new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero), new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            new SigV4Options("service", "us-east-1"));
        Console.WriteLine(signature.Signature);
        Assembly library = typeof(SigV4).Assembly;
        Console.WriteLine(library.GetName().Name);
        Console.WriteLine(library.GetCustomAttribute<TargetFrameworkAttribute>()?.FrameworkName);
        Console.WriteLine(typeof(SigV4).IsPublic ? "public" : "internal");
        """;

    private string _work = "";
    private string _feed = "";
    private int _buildExitCode;
    private string _buildLog = "";

    [OneTimeSetUp]
    public void PackAndBuildConsumers()
    {
        _work = Directory.CreateTempSubdirectory("sigv4lite-packages-").FullName;
        _feed = Path.Combine(_work, "feed");
        var timer = Stopwatch.StartNew();
        Pack("SigV4Lite.csproj");
        Pack("packaging/SigV4Lite.Sources.csproj");
        TestContext.Progress.WriteLine($"PackageTests: packed in {timer.Elapsed.TotalSeconds:F1} s");

        string consumers = Path.Combine(_work, "consumers");
        WriteConsumers(consumers);
        timer.Restart();
        (_buildExitCode, _buildLog) = Run(consumers, "dotnet", "build", "Consumers.slnx", "-c", "Release", "-nodeReuse:false");
        TestContext.Progress.WriteLine($"PackageTests: consumers restored and built in {timer.Elapsed.TotalSeconds:F1} s");
    }

    [OneTimeTearDown]
    public void DeleteWork()
    {
        if (_work.Length > 0) Directory.Delete(_work, recursive: true);
    }

    private void Pack(string project)
    {
        var (exit, log) = Run(RepositoryRoot(), "dotnet", "pack", project, "-c", "Release", "-o", _feed, "-nodeReuse:false");
        Assert.That(exit, Is.EqualTo(0), log);
    }

    private void WriteConsumers(string consumers)
    {
        Directory.CreateDirectory(consumers);
        File.WriteAllText(Path.Combine(consumers, "nuget.config"), NuGetConfig(_feed, Path.Combine(_work, "packages")));
        // A new project's usual settings on top of warnings as errors: the sources must compile clean under them too.
        const string typical = "<ImplicitUsings>enable</ImplicitUsings>";
        Write(consumers, "Compiled", Project(PackageReference("SigV4Lite"), targetFrameworks: "net8.0;net10.0", exe: true, properties: typical), SigningApp);
        Write(consumers, "Alone", Project("", targetFrameworks: "net8.0", exe: true), SigningApp);
        File.Copy(Path.Combine(RepositoryRoot(), "SigV4.cs"), Path.Combine(consumers, "Alone", "SigV4.cs"));
        WriteTwoLibraries(consumers, PackageReference("SigV4Lite.Sources"), PackageReference("SigV4Lite.Sources"), libraryFramework: "net8.0", properties: typical);
        var projects = new[] { "Compiled", "Alone", "LibA", "LibB", "App" }.Select(p => $"""<Project Path="{p}/{p}.csproj" />""");
        File.WriteAllText(Path.Combine(consumers, "Consumers.slnx"), $"<Solution>{string.Concat(projects)}</Solution>");
    }

    private static string PackageReference(string id) => $"""<PackageReference Include="{id}" Version="{Version}" />""";

    // The local feed for our packages only; NuGet's for the rest (net8.0's reference assemblies). Packages are unpacked
    // into this run's own folder, so a package of this run is never mistaken for one of an earlier run with the same
    // version; what the machine's NuGet folder already holds is read from there.
    private static string NuGetConfig(string feed, string packages) => $"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <config><add key="globalPackagesFolder" value="{packages}" /></config>
          <packageSources>
            <clear />
            <add key="local" value="{feed}" />
            <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
          </packageSources>
          <fallbackPackageFolders><add key="machine" value="{MachinePackages()}" /></fallbackPackageFolders>
          <packageSourceMapping>
            <packageSource key="local"><package pattern="SigV4Lite" /><package pattern="SigV4Lite.*" /></packageSource>
            <packageSource key="nuget.org"><package pattern="*" /></packageSource>
          </packageSourceMapping>
        </configuration>
        """;

    private static string MachinePackages() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    [Test]
    public void Consumers_BuildWithWarningsAsErrors()
    {
        Assert.That(_buildExitCode, Is.EqualTo(0), _buildLog);
        Assert.That(_buildLog, Does.Not.Contain(": warning "), _buildLog);
    }

    [TestCase("Compiled", "net8.0", "SigV4Lite", ".NETCoreApp,Version=v8.0", "public")]
    [TestCase("Compiled", "net10.0", "SigV4Lite", ".NETCoreApp,Version=v10.0", "public")]
    [TestCase("Alone", "net8.0", "Alone", ".NETCoreApp,Version=v8.0", "internal")]
    public void ConsumerApp_SignsTheSuiteCase(string app, string framework, string assembly, string frameworkName, string visibility)
    {
        Assert.That(_buildExitCode, Is.EqualTo(0), _buildLog);
        string output = Path.Combine(_work, "consumers", app, "bin", "Release", framework);
        // Only the .NET 10 runtime is here: a net8.0 app runs on it by rolling forward, with its net8.0 references.
        var (exit, text) = Run(output, new Dictionary<string, string> { ["DOTNET_ROLL_FORWARD"] = "Major" }, "dotnet", Path.Combine(output, app + ".dll"));
        Assert.That(exit, Is.EqualTo(0), text);
        Assert.That(Lines(text), Is.EqualTo(new[] { GetVanillaSignature, assembly, frameworkName, visibility }));
    }

    [Test]
    public void TwoLibrariesThatTakeTheSourcePackage_BuildWithoutConflictsAndExposeNothing() =>
        CheckTwoLibraries(_buildExitCode, _buildLog, Path.Combine(_work, "consumers", "App", "bin", "Release", "net10.0"));

    [Test]
    public void CompiledPackage_HasBothFrameworksDocsSymbolsAndMetadata_AndNoDependency()
    {
        using var package = ZipFile.OpenRead(Path.Combine(_feed, $"SigV4Lite.{Version}.nupkg"));
        var files = package.Entries.Select(e => e.FullName).ToList();
        Assert.That(files, Is.SupersetOf(new[]
        {
            "lib/net8.0/SigV4Lite.dll", "lib/net8.0/SigV4Lite.xml", "lib/net10.0/SigV4Lite.dll", "lib/net10.0/SigV4Lite.xml", "README.md",
        }));
        var metadata = Metadata(package, "SigV4Lite.nuspec");
        CheckSharedMetadata(metadata);
        Assert.That(metadata.Descendants().Where(e => e.Name.LocalName == "dependency"), Is.Empty, "no dependency");

        using var symbols = ZipFile.OpenRead(Path.Combine(_feed, $"SigV4Lite.{Version}.snupkg"));
        Assert.That(symbols.Entries.Select(e => e.FullName), Is.SupersetOf(new[] { "lib/net8.0/SigV4Lite.pdb", "lib/net10.0/SigV4Lite.pdb" }));
    }

    [Test]
    public void SourcePackage_HoldsEveryLibraryFileAsCompiledContent_AndIsADevelopmentDependencyWithoutDependencies()
    {
        using var package = ZipFile.OpenRead(Path.Combine(_feed, $"SigV4Lite.Sources.{Version}.nupkg"));
        var libraryFiles = Directory.GetFiles(RepositoryRoot(), "*.cs").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.That(libraryFiles, Does.Contain("SigV4.cs").And.Contain("LambdaInvoke.cs"));
        var contentFiles = package.Entries.Where(e => e.FullName.StartsWith("contentFiles/", StringComparison.Ordinal)).Select(e => e.FullName).ToList();
        Assert.That(contentFiles, Is.EquivalentTo(libraryFiles.Select(f => "contentFiles/cs/any/SigV4Lite/" + f)));
        Assert.That(package.Entries.Where(e => e.FullName.StartsWith("lib/", StringComparison.Ordinal) || e.FullName.StartsWith("build", StringComparison.Ordinal)), Is.Empty);

        var metadata = Metadata(package, "SigV4Lite.Sources.nuspec");
        CheckSharedMetadata(metadata);
        Assert.That(Value(metadata, "developmentDependency"), Is.EqualTo("true"));
        Assert.That(metadata.Descendants().Where(e => e.Name.LocalName == "dependency"), Is.Empty, "no dependency");
        var declared = metadata.Descendants().Where(e => e.Name.LocalName == "files").ToList();
        Assert.That(declared.Select(f => (string?)f.Attribute("include")), Is.EquivalentTo(libraryFiles.Select(f => "cs/any/SigV4Lite/" + f)));
        Assert.That(declared.Select(f => (string?)f.Attribute("buildAction")).Distinct(), Is.EqualTo(new[] { "Compile" }));
    }

    private static XElement Metadata(ZipArchive package, string nuspec)
    {
        using var stream = package.GetEntry(nuspec)!.Open();
        return XDocument.Load(stream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private static string? Value(XElement metadata, string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;

    private static void CheckSharedMetadata(XElement metadata)
    {
        Assert.That(Value(metadata, "version"), Is.EqualTo(Version));
        Assert.That(Value(metadata, "license"), Is.EqualTo("MIT"));
        Assert.That(Value(metadata, "readme"), Is.EqualTo("README.md"));
        Assert.That(Value(metadata, "projectUrl"), Does.StartWith("https://"));
        Assert.That(metadata.Elements().Single(e => e.Name.LocalName == "repository").Attribute("url")?.Value, Does.StartWith("https://"));
        Assert.That(Value(metadata, "tags"), Does.Contain("sigv4"));
        Assert.That(Value(metadata, "releaseNotes"), Does.StartWith($"## {Version}").And.Contain("SigV4Lite.Sources"), "this version's CHANGELOG.md section");
    }
}
