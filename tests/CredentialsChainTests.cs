using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>The default chain: each link's place in the order, laziness, and the error when nothing is found.</summary>
public class CredentialsChainTests : CredentialsTestBase
{
    private const string EnvId = "ASIAENVIRONMENT00001";
    private const string EnvSecret = "envSecret/K7MDENG+bPxRfiCYEXAMPLEKEY0001";
    private const string EnvToken = "IQoJb3JpZ2luX2VjEnvironmentToken";

    private void SetEnvironmentKeys()
    {
        Env["AWS_ACCESS_KEY_ID"] = EnvId;
        Env["AWS_SECRET_ACCESS_KEY"] = EnvSecret;
        Env["AWS_SESSION_TOKEN"] = EnvToken;
    }

    [Test]
    public async Task EnvironmentVariablesAlone()
    {
        SetEnvironmentKeys();
        var chain = AwsCredentialsChain.CreateDefault(Options());
        var credentials = await chain.GetCredentialsAsync();
        Assert.That((credentials.AccessKeyId, credentials.SecretAccessKey, credentials.SessionToken, credentials.Expiration),
            Is.EqualTo((EnvId, EnvSecret, EnvToken, (DateTimeOffset?)null)));
        Assert.That(chain.Source, Is.EqualTo("environment variables"));
        Assert.That(await chain.GetCredentialsAsync(), Is.SameAs(credentials), "static credentials are kept, not read again");
    }

    // A profile set in code is an explicit choice (the CLI's --profile, botocore's Session(profile=...)): the
    // environment's keys and web identity variables must not sign instead. Through AWS_PROFILE they still come first.
    [Test]
    public async Task AProfileSetInCodeWinsOverTheEnvironmentsKeysAndAws_ProfileDoesNot()
    {
        SetEnvironmentKeys();
        Env["AWS_WEB_IDENTITY_TOKEN_FILE"] = Path.Combine(Home.Directory, "no-such-token");
        Env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/r";
        Home.WriteCredentials("[dev]\naws_access_key_id = AKIAPROFILEDEV000001\naws_secret_access_key = devSecret\n");

        var explicitChoice = AwsCredentialsChain.CreateDefault(Options(profile: "dev"));
        Assert.That((await explicitChoice.GetCredentialsAsync()).AccessKeyId, Is.EqualTo("AKIAPROFILEDEV000001"));
        Assert.That(explicitChoice.Source, Is.EqualTo("profile 'dev'"));

        Env["AWS_PROFILE"] = "dev";
        var fromEnvironment = AwsCredentialsChain.CreateDefault(Options());
        Assert.That((await fromEnvironment.GetCredentialsAsync()).AccessKeyId, Is.EqualTo(EnvId));
        Assert.That(fromEnvironment.Source, Is.EqualTo("environment variables"));
    }

    [TestCase("")]
    [TestCase("  ")]
    public void ABlankProfileSetInCodeIsRefused(string blank)
    {
        var e = Assert.Throws<ArgumentException>(() => _ = new AwsConfigOptions { Profile = blank })!;
        Assert.That(e.Message, Does.Contain("Profile must name a profile (such as production), or be null to read AWS_PROFILE"));
    }

    [Test]
    public async Task NothingIsReadBeforeTheFirstCallAndLambdaStyleEnvironmentCostsNoFileOrNetwork()
    {
        // A malformed config file and a live metadata service: reading either would show (an error, a request).
        Home.WriteConfig("not an ini file");
        Home.WriteCredentials("[default\n");
        await using var imds = new FakeHttpServer(_ => new Reply(500));
        await using var container = new FakeHttpServer(_ => new Reply(500));
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        Env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/creds";
        Env["AWS_WEB_IDENTITY_TOKEN_FILE"] = Path.Combine(Home.Directory, "no-such-token");
        Env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/r";
        SetEnvironmentKeys();

        var chain = AwsCredentialsChain.CreateDefault(Options(container: container.Url, imds: imds.Url));
        Assert.That(Env.NamesRead, Is.Empty, "creating the chain reads nothing");

        var credentials = await chain.GetCredentialsAsync();
        Assert.That(credentials.AccessKeyId, Is.EqualTo(EnvId));
        Assert.That(Env.NamesRead.Distinct(), Is.EquivalentTo(new[] { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN" }));
        Assert.That(imds.Requests, Is.Empty);
        Assert.That(container.Requests, Is.Empty);
    }

    [Test]
    public async Task EnvironmentComesBeforeWebIdentityProfileAndContainer()
    {
        await using var sts = new FakeSts(Clock);
        await using var container = new FakeHttpServer(_ => Reply.Json(CredentialsJson("ASIACONTAINER", "containerSecret", "t", Start.AddHours(1))));
        Home.WriteCredentials($"[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profileSecret\n");
        Home.Write("token", "eyJhbGciOiJSUzI1NiJ9.web.identity");
        Env["AWS_WEB_IDENTITY_TOKEN_FILE"] = Path.Combine(Home.Directory, "token");
        Env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/web";
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = container.Url + "creds";

        SetEnvironmentKeys();
        Assert.That((await AwsCredentialsChain.CreateDefault(Options(sts.Server.Url)).GetCredentialsAsync()).AccessKeyId, Is.EqualTo(EnvId));
        Assert.That(sts.Calls, Is.Empty);

        Env["AWS_ACCESS_KEY_ID"] = Env["AWS_SECRET_ACCESS_KEY"] = Env["AWS_SESSION_TOKEN"] = null;
        var chain = AwsCredentialsChain.CreateDefault(Options(sts.Server.Url));
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Does.StartWith("ASIASTS"), "web identity comes next");
        Assert.That(chain.Source, Is.EqualTo("web identity token file"));

        Env["AWS_WEB_IDENTITY_TOKEN_FILE"] = Env["AWS_ROLE_ARN"] = null;
        chain = AwsCredentialsChain.CreateDefault(Options(sts.Server.Url));
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Is.EqualTo("AKIDPROFILE"), "then the profile");
        Assert.That(chain.Source, Is.EqualTo("profile 'default'"));
        Assert.That(container.Requests, Is.Empty);

        File.Delete(Home.CredentialsPath);
        chain = AwsCredentialsChain.CreateDefault(Options(sts.Server.Url));
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Is.EqualTo("ASIACONTAINER"), "then the container");
        Assert.That(chain.Source, Is.EqualTo("container credentials"));
    }

    [Test]
    public async Task ContainerComesBeforeInstanceMetadata()
    {
        await using var imds = new FakeHttpServer(_ => new Reply(500));
        await using var container = new FakeHttpServer(_ => Reply.Json(CredentialsJson("ASIACONTAINER", "containerSecret", "t", Start.AddHours(1))));
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        Env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/abc";
        var chain = AwsCredentialsChain.CreateDefault(Options(container: container.Url, imds: imds.Url));
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Is.EqualTo("ASIACONTAINER"));
        Assert.That(imds.Requests, Is.Empty);
    }

    [Test]
    public async Task AProfileWithoutCredentialsLetsTheChainGoOn()
    {
        Home.WriteConfig("[default]\nregion = eu-west-1\n");
        await using var container = new FakeHttpServer(_ => Reply.Json(CredentialsJson("ASIACONTAINER", "containerSecret", "t", Start.AddHours(1))));
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = container.Url + "creds";
        Assert.That((await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync()).AccessKeyId, Is.EqualTo("ASIACONTAINER"));
    }

    [Test]
    public void NoCredentialsAnywhereListsEveryPlaceInOrder()
    {
        Home.WriteConfig("[default]\nregion = eu-west-1\n");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo(
            "No AWS credentials were found. Looked at, in order:\n" +
            "  - environment variables: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set\n" +
            "  - web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set\n" +
            $"  - profile 'default' ({Home.ConfigPath} line 1): has no credentials (aws_access_key_id, role_arn, credential_process or sso_session)\n" +
            "  - container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set\n" +
            "  - EC2 instance metadata: disabled by AWS_EC2_METADATA_DISABLED=true\n" +
            "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, configure a profile in the shared config files (AWS_PROFILE selects it), or give credentials in code."));
    }

    [TestCase("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    [TestCase("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")]
    public void HalfTheEnvironmentKeysIsAnErrorNotASkip(string set, string missing)
    {
        Env[set] = set == "AWS_ACCESS_KEY_ID" ? EnvId : EnvSecret;
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo($"The environment variable {set} is set but {missing} is not; set both, or neither."));
    }

    [Test]
    public void MalformedEnvironmentKeysNameTheVariablesNotTheSecret()
    {
        Env["AWS_ACCESS_KEY_ID"] = EnvId;
        Env["AWS_SECRET_ACCESS_KEY"] = "bad secret value";
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("AWS_SECRET_ACCESS_KEY").And.Contain("empty or has white space").And.Not.Contain("bad secret value"));
    }

    [Test]
    public void HalfTheWebIdentityVariablesIsAnError()
    {
        Env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/web";
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo("The environment variable AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not; web identity needs both."));
    }

    [Test]
    public async Task TheChainSignsThroughTheHandler()
    {
        SetEnvironmentKeys();
        await using var service = new FakeHttpServer(r => new Reply(200, r.Header("Authorization") ?? "", "text/plain"));
        using var http = new HttpClient(new SigV4Handler(AwsCredentialsChain.CreateDefault(Options()), new SigV4Options("lambda", "us-east-1")));
        var authorization = await http.GetStringAsync(service.Url + "2015-03-31/functions");
        Assert.That(authorization, Does.StartWith($"AWS4-HMAC-SHA256 Credential={EnvId}/"));
        Assert.That(service.Requests.Single().Header("X-Amz-Security-Token"), Is.EqualTo(EnvToken));
    }
}
