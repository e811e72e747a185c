using static SigV4Lite.Tests.ConsumerProjects;

namespace SigV4Lite.Tests;

/// <summary>
/// Two class libraries that each compile SigV4.cs and SigV4Verifier.cs (as a copy gives them), and an app that
/// references both and has a third copy: the app builds with warnings as errors (no CS0436, no CS0433), all three
/// copies sign alike, and neither library exposes a SigV4Lite type. tests/packages/PackageTests.cs does the same with the source package.
/// </summary>
public class TwoCopiesTests
{
    [Test]
    public void AppWithTwoLibrariesThatEmbedTheSources_BuildsWithoutConflictsAndExposesNothing()
    {
        string copies = CopiedFiles(RepositoryRoot(), "SigV4.cs", "SigV4Verifier.cs");
        string work = Directory.CreateTempSubdirectory("sigv4lite-two-copies-").FullName;
        try
        {
            BuildAndCheckTwoLibraries(work, copies, copies);
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
}
