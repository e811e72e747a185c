using System.Collections;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.Loader;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace SigV4Lite.Tests;

/// <summary>A C# block of README.md: its code, and the README line its code starts on (1-based).</summary>
internal sealed record ReadmeBlock(int Line, string Code)
{
    /// <summary>The namespace the block is compiled in; its statements are the body of <c>Recipe.RunAsync()</c> there.</summary>
    public string Namespace => $"Readme.Line{Line}";
}

/// <summary>
/// Every C# block of README.md, compiled together in one Roslyn compilation (C# 12, net8.0's default, with nullable
/// on, as a new project has it) against the library, the running runtime's assemblies (ASP.NET Core's included),
/// Microsoft.Extensions.* and OpenTelemetry. A block reads as a top-level program: its using directives, then
/// statements, which become the body of an async method, then any types. The free variables the snippets use
/// (credentials, an HttpContent, a queue URL, an IServiceCollection, ...) are static properties of a shared prelude,
/// imported with <c>using static</c>; a block that declares one of those names uses its own. <c>#line</c> directives
/// map every diagnostic to its README line. The emitted assembly is loaded so that tests can run a block.
/// </summary>
internal sealed partial class ReadmeRecipes
{
    public const string ReadmeFileName = "README.md";
    private const string PreludeFileName = "ReadmePrelude.cs";

    // Warnings that the wrapping causes, not the recipe. CS1998: the method a block becomes is async whether or not
    // the block awaits.
    private static readonly string[] WrapperWarnings = ["CS1998"];

    private static readonly Lazy<ReadmeRecipes> s_compiled = new(() => new ReadmeRecipes(File.ReadAllText(ReadmePath())));

    private readonly string[] _readmeLines;
    private readonly byte[]? _image;
    private Assembly? _assembly;

    private ReadmeRecipes(string readme)
    {
        var timer = Stopwatch.StartNew();
        _readmeLines = readme.ReplaceLineEndings("\n").Split('\n');
        Blocks = CSharpBlocks(_readmeLines);
        var compilation = CSharpCompilation.Create("SigV4Lite.Readme",
            [Parse(Prelude, PreludeFileName), .. Blocks.Select(block => Parse(Wrap(block), block.Namespace + ".cs"))],
            References(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, warningLevel: 9999));
        using var image = new MemoryStream();
        var result = compilation.Emit(image);
        Problems = result.Diagnostics
            .Where(d => d.Severity == DiagnosticSeverity.Error || d.Severity == DiagnosticSeverity.Warning && !WrapperWarnings.Contains(d.Id))
            .ToList();
        if (result.Success) _image = image.ToArray();
        CompileTime = timer.Elapsed;
    }

    /// <summary>The README, compiled once per test run.</summary>
    public static ReadmeRecipes Compiled => s_compiled.Value;

    /// <summary>Other markdown, compiled as the README is (to test this class).</summary>
    public static ReadmeRecipes FromMarkdown(string markdown) => new(markdown);

    /// <summary>Every C# block (<c>csharp</c>, <c>cs</c> or <c>c#</c>), in README order.</summary>
    public IReadOnlyList<ReadmeBlock> Blocks { get; }

    /// <summary>The compiler's errors and warnings.</summary>
    public IReadOnlyList<Diagnostic> Problems { get; }

    /// <summary>How long extracting, compiling and emitting took.</summary>
    public TimeSpan CompileTime { get; }

    /// <summary>The README found above the test assembly: the repository's own, beside SigV4.cs.</summary>
    public static string ReadmePath()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, ReadmeFileName)) && File.Exists(Path.Combine(dir.FullName, "SigV4.cs")))
                return Path.Combine(dir.FullName, ReadmeFileName);
        throw new FileNotFoundException($"No {ReadmeFileName} beside SigV4.cs above {AppContext.BaseDirectory}.");
    }

    /// <summary>Each problem as "README.md:LINE:COLUMN: error CSxxxx: message" (in English), with the README line it is on.</summary>
    public string Describe(IEnumerable<Diagnostic> problems) => string.Join("\n", problems.Select(Describe));

    private string Describe(Diagnostic problem)
    {
        var at = problem.Location.GetMappedLineSpan();
        int line = at.StartLinePosition.Line + 1;
        string where = $"{at.Path}:{line}:{at.StartLinePosition.Character + 1}";
        string text = at.Path == ReadmeFileName && line <= _readmeLines.Length ? "\n    " + _readmeLines[line - 1].Trim() : "";
        return $"{where}: {problem.Severity.ToString().ToLowerInvariant()} {problem.Id}: {problem.GetMessage(CultureInfo.InvariantCulture)}{text}";
    }

    /// <summary>The one block whose code contains <paramref name="text"/>.</summary>
    public ReadmeBlock Block(string text)
    {
        var found = Blocks.Where(block => block.Code.Contains(text, StringComparison.Ordinal)).ToList();
        return found.Count == 1 ? found[0]
            : throw new InvalidOperationException($"{found.Count} C# blocks of the README contain '{text}' (lines {string.Join(", ", found.Select(b => b.Line))}); a test needs exactly one.");
    }

    /// <summary>
    /// Runs the block that contains <paramref name="text"/>, with the prelude's variables set first, and returns what
    /// it wrote to the console. Its exceptions come out as they are. Tests run one at a time (the console is the process's).
    /// </summary>
    public async Task<string> RunAsync(string text, params (string Name, object? Value)[] prelude)
    {
        var output = new StringWriter();
        await RunAsync(text, output, prelude);
        return output.ToString();
    }

    /// <summary>Runs the block as <see cref="RunAsync(string, ValueTuple{string, object}[])"/> does, its console output
    /// written to <paramref name="output"/> (which keeps what it printed before an exception).</summary>
    public async Task RunAsync(string text, TextWriter output, params (string Name, object? Value)[] prelude)
    {
        var block = Block(text);
        var assembly = Load();
        var preludeType = assembly.GetType("Readme.Prelude", throwOnError: true)!;
        foreach (var (name, value) in prelude)
            (preludeType.GetProperty(name) ?? throw new ArgumentException($"The prelude has no variable '{name}'.", nameof(prelude))).SetValue(null, value);
        var run = assembly.GetType(block.Namespace + ".Recipe", throwOnError: true)!.GetMethod("RunAsync")!;

        var console = Console.Out;
        Console.SetOut(output);
        try
        {
            await (Task)run.Invoke(null, null)!;
        }
        finally
        {
            Console.SetOut(console);
        }
    }

    private Assembly Load()
    {
        if (_image is null) throw new InvalidOperationException("The README's C# blocks do not compile:\n" + Describe(Problems));
        return _assembly ??= AssemblyLoadContext.Default.LoadFromStream(new MemoryStream(_image));
    }

    // Fenced code blocks as CommonMark reads them: an opening fence of three or more backticks or tildes (indented in a
    // list item, its indentation taken off the lines inside), closed by a fence of the same character at least as long.
    [GeneratedRegex(@"^(?<indent>\s*)(?<fence>`{3,}|~{3,})\s*(?<info>[^\s`]*)")]
    private static partial Regex OpeningFence();

    internal static IReadOnlyList<ReadmeBlock> CSharpBlocks(string[] lines)
    {
        var blocks = new List<ReadmeBlock>();
        for (int i = 0; i < lines.Length; i++)
        {
            var open = OpeningFence().Match(lines[i]);
            if (!open.Success) continue;
            string fence = open.Groups["fence"].Value;
            int indent = open.Groups["indent"].Length, start = i + 1, end = start;
            while (end < lines.Length && !IsClosingFence(lines[end], fence)) end++;
            if (open.Groups["info"].Value.ToLowerInvariant() is "csharp" or "cs" or "c#")
                blocks.Add(new ReadmeBlock(start + 1, string.Join("\n", lines[start..end].Select(line => Unindent(line, indent)))));
            i = end;
        }
        return blocks;
    }

    private static bool IsClosingFence(string line, string fence)
    {
        string trimmed = line.Trim();
        return trimmed.Length >= fence.Length && trimmed.All(c => c == fence[0]);
    }

    private static string Unindent(string line, int indent)
    {
        int blank = 0;
        while (blank < indent && blank < line.Length && line[blank] == ' ') blank++;
        return line[blank..];
    }

    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.CSharp12);

    private static SyntaxTree Parse(string code, string path) => CSharpSyntaxTree.ParseText(code, ParseOptions, path, Encoding.UTF8);

    // The block as a top-level program cut in three runs of lines (usings, statements, types), each put where C#
    // takes it and preceded by a #line directive that names its README line.
    private static string Wrap(ReadmeBlock block)
    {
        var unit = (CompilationUnitSyntax)Parse(block.Code, ReadmeFileName).GetRoot();
        var text = unit.SyntaxTree.GetText();
        int EndLine(SyntaxNode node) => text.Lines.GetLineFromPosition(node.Span.End).LineNumber + 1;
        int usingsEnd = unit.Usings.Count == 0 ? 0 : EndLine(unit.Usings.Last());
        var statements = unit.Members.OfType<GlobalStatementSyntax>().ToList();
        int statementsEnd = statements.Count == 0 ? usingsEnd : Math.Max(usingsEnd, EndLine(statements.Last()));
        string[] lines = block.Code.Split('\n');

        string Lines(int from, int to) => from >= to ? "" :
            $"#line {block.Line + from} \"{ReadmeFileName}\"\n{string.Join("\n", lines[from..to])}\n#line default\n";

        return $$"""
            namespace {{block.Namespace}}
            {
            {{Lines(0, usingsEnd)}}
            using static global::Readme.Prelude;

            internal static class Recipe
            {
                public static async global::System.Threading.Tasks.Task RunAsync()
                {
            {{Lines(usingsEnd, statementsEnd)}}
                }
            }
            {{Lines(statementsEnd, lines.Length)}}
            }
            """;
    }

    // The running runtime's assemblies (the trusted platform assemblies, one per name, the host's pick), those of the
    // shared frameworks plus the library, Microsoft.Extensions.* and OpenTelemetry: what an app using SigV4Lite,
    // IHttpClientFactory and OpenTelemetry compiles against.
    private static IEnumerable<MetadataReference> References()
    {
        string[] frameworks = [Path.GetDirectoryName(typeof(object).Assembly.Location)!,
            Path.GetDirectoryName(typeof(Microsoft.AspNetCore.Builder.WebApplication).Assembly.Location)!];
        return ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!)
            .Split(Path.PathSeparator)
            .Where(path => frameworks.Contains(Path.GetDirectoryName(path)) || Path.GetFileNameWithoutExtension(path) is var name &&
                (name == "SigV4Lite" || name.StartsWith("Microsoft.Extensions.", StringComparison.Ordinal) || name.StartsWith("OpenTelemetry", StringComparison.Ordinal)))
            .Select(path => MetadataReference.CreateFromFile(path));
    }

    // The free variables of the recipes, with the SDK's implicit usings (console app) and SigV4Lite. Values are
    // placeholders for compiling; a test that runs a block sets what the block reads.
    private const string Prelude = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        global using SigV4Lite;

        namespace Readme;

        public static class Prelude
        {
            public static CancellationToken cancellationToken { get; set; }
            public static string accessKeyId { get; set; } = "AKIDEXAMPLE";
            public static string secretAccessKey { get; set; } = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
            public static string? sessionToken { get; set; }
            public static AwsCredentials credentials { get; set; } = new(accessKeyId, secretAccessKey);
            public static HttpContent content { get; set; } = new StringContent("Action=ListQueues");
            public static HttpRequestMessage request { get; set; } = new(HttpMethod.Get, "https://abc123.execute-api.us-east-1.amazonaws.com/prod/orders");
            public static byte[] body { get; set; } = [];
            public static string queueUrl { get; set; } = "https://sqs.us-east-1.amazonaws.com/123456789012/orders";
            public static IEnumerable<int> orderIds { get; set; } = Enumerable.Range(1, 100);
            public static string clusterName { get; set; } = "my-cluster";
            public static Stream stream { get; set; } = Stream.Null;
            public static Microsoft.Extensions.DependencyInjection.IServiceCollection services { get; set; } = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
            public static Microsoft.AspNetCore.Builder.WebApplicationBuilder builder { get; set; } = null!;
            public static IReadOnlyDictionary<string, AwsCredentials> keys { get; set; } = new Dictionary<string, AwsCredentials>();
            public static string method { get; set; } = "GET";
            public static string rawPath { get; set; } = "/";
            public static string rawQuery { get; set; } = "";
            public static IReadOnlyList<KeyValuePair<string, string>> headers { get; set; } = [];
        }
        """;
}

/// <summary>
/// The AWS environment a README recipe runs in, for as long as it is not disposed: every AWS_* variable of the process
/// cleared, example keys and us-east-1 set, no shared config file, no instance metadata, and the variables given
/// (such as AWS_ENDPOINT_URL, a loopback fake). Restores the process's own on dispose. Tests run one at a time.
/// </summary>
internal sealed class AwsEnvironment : IDisposable
{
    private readonly Dictionary<string, string?> _saved = new();

    public AwsEnvironment(params (string Name, string? Value)[] variables)
    {
        foreach (DictionaryEntry variable in Environment.GetEnvironmentVariables())
            if (variable.Key is string name && name.StartsWith("AWS_", StringComparison.Ordinal)) Set(name, null);
        string nowhere = Path.Combine(Path.GetTempPath(), "sigv4lite-readme-" + Guid.NewGuid().ToString("N"));
        Set("AWS_ACCESS_KEY_ID", FakeAwsService.Credentials.AccessKeyId);
        Set("AWS_SECRET_ACCESS_KEY", FakeAwsService.Credentials.SecretAccessKey);
        Set("AWS_REGION", FakeAwsService.Region);
        Set("AWS_CONFIG_FILE", Path.Combine(nowhere, "config"));
        Set("AWS_SHARED_CREDENTIALS_FILE", Path.Combine(nowhere, "credentials"));
        Set("AWS_EC2_METADATA_DISABLED", "true");
        foreach (var (name, value) in variables) Set(name, value);
    }

    private void Set(string name, string? value)
    {
        _saved.TryAdd(name, Environment.GetEnvironmentVariable(name));
        Environment.SetEnvironmentVariable(name, value);
    }

    public void Dispose()
    {
        foreach (var (name, value) in _saved) Environment.SetEnvironmentVariable(name, value);
    }
}
