namespace SigV4Lite.Tests;

/// <summary>
/// The compiled library's public API is checked in (api/SigV4Lite.txt), so that every change to it is deliberate: a
/// change to the surface fails here until the file is regenerated and committed with it.
/// </summary>
public class PublicApiTests
{
    private const string UpdateVariable = "UPDATE_API_BASELINE";

    private static readonly string Header = $"""
        # The public API of the compiled SigV4Lite package (net10.0 build; net8.0 compiles the same files, and no public
        # member depends on the framework). Written by tests/PublicApi.cs; checked by PublicApiTests. To regenerate:
        #   {UpdateVariable}=1 dotnet test tests/SigV4Lite.Tests.csproj --filter PublicApiTests
        # then review the diff and commit it with the change that made it.

        """.Replace("\r\n", "\n", StringComparison.Ordinal);

    private static string BaselinePath => Path.Combine(ConsumerProjects.RepositoryRoot(), "api", "SigV4Lite.txt");

    [Test]
    public void PublicApi_MatchesTheCheckedInBaseline()
    {
        string actual = Header + PublicApi.Describe(typeof(SigV4).Assembly);
        if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(BaselinePath)!);
            File.WriteAllText(BaselinePath, actual);
        }
        string expected = File.Exists(BaselinePath) ? File.ReadAllText(BaselinePath).Replace("\r\n", "\n", StringComparison.Ordinal) : "";
        Assert.That(actual == expected, Is.True, Difference(expected, actual));
    }

    // The baseline sees what it must: public and protected members with nullability and defaults, nothing internal.
    [Test]
    public void Describe_ShowsSignaturesWithNullabilityAndDefaults_AndNoInternalType()
    {
        string api = PublicApi.Describe(typeof(SigV4).Assembly);
        Assert.That(api, Does.Contain("public sealed class AwsCredentials"));
        Assert.That(api, Does.Contain("    public AwsCredentials(string accessKeyId, string secretAccessKey, string? sessionToken = null, DateTimeOffset? expiration = null)"));
        Assert.That(api, Does.Contain("    public const string EmptyPayloadHash = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""));
        Assert.That(api, Does.Contain("\n    public static ValueTask<SigV4Signature> SignAsync(HttpRequestMessage request, AwsCredentials credentials, SigV4Options options, CancellationToken cancellationToken = default)\n"));
        Assert.That(api, Does.Not.Contain("class Json").And.Not.Contain("AwsHttp"));
    }

    private static string Difference(string expected, string actual)
    {
        var expectedLines = expected.Split('\n');
        var actualLines = actual.Split('\n');
        var removed = expectedLines.Except(actualLines).Take(20).Select(l => "  - " + l);
        var added = actualLines.Except(expectedLines).Take(20).Select(l => "  + " + l);
        return $"""
            The public API differs from api/SigV4Lite.txt (first differences; - baseline, + now):
            {string.Join("\n", removed.Concat(added))}
            If the change is deliberate, regenerate the file and commit it with the change:
              {UpdateVariable}=1 dotnet test tests/SigV4Lite.Tests.csproj --filter PublicApiTests
            """;
    }
}
