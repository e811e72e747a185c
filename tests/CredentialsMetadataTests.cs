using System.Net;
using System.Net.Sockets;
using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>Container credentials and EC2 instance metadata (IMDSv2), served by loopback servers.</summary>
public class CredentialsMetadataTests : CredentialsTestBase
{
    private static Reply ContainerAnswer(string id = "ASIACONTAINER") =>
        Reply.Json(CredentialsJson(id, "containerSecret/EXAMPLE", "containerToken", Start.AddHours(6)) + "\n");

    [Test]
    public async Task ContainerRelativeUriWithAToken()
    {
        await using var server = new FakeHttpServer(_ => ContainerAnswer());
        Env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/task-1234";
        Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Basic abcd";
        var chain = AwsCredentialsChain.CreateDefault(Options(container: server.Url));
        var credentials = await chain.GetCredentialsAsync();
        Assert.That((credentials.AccessKeyId, credentials.SecretAccessKey, credentials.SessionToken, credentials.Expiration),
            Is.EqualTo(("ASIACONTAINER", "containerSecret/EXAMPLE", "containerToken", (DateTimeOffset?)Start.AddHours(6))));
        var request = server.Requests.Single();
        Assert.That((request.Method, request.Path), Is.EqualTo(("GET", "/v2/credentials/task-1234")));
        Assert.That(request.Header("Authorization"), Is.EqualTo("Basic abcd"));
        Assert.That(chain.Source, Is.EqualTo("container credentials"));
    }

    // The relative URI is a path on the container endpoint: '//host/...' (a network-path reference if resolved as a
    // relative URI) must not send the request, and its token, to another host.
    [Test]
    public async Task ContainerRelativeUriCannotLeaveTheContainerHost()
    {
        await using var container = new FakeHttpServer(_ => ContainerAnswer());
        await using var elsewhere = new FakeHttpServer(_ => ContainerAnswer("ASIAELSEWHERE"));
        Env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = $"//127.0.0.1:{elsewhere.Url.Port}/steal";
        Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Bearer container-secret";
        var chain = AwsCredentialsChain.CreateDefault(Options(container: container.Url));

        var credentials = await chain.GetCredentialsAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(elsewhere.Requests, Is.Empty, "the request (with its token) went to a host other than the container endpoint");
        Assert.That(credentials.AccessKeyId, Is.EqualTo("ASIACONTAINER"));
        var request = container.Requests.Single();
        Assert.That((request.Path, request.Header("Authorization")), Is.EqualTo(($"//127.0.0.1:{elsewhere.Url.Port}/steal", "Bearer container-secret")));
    }

    [TestCase("v2/credentials")]
    [TestCase("http://127.0.0.1:9/creds")]
    [TestCase("@127.0.0.1:9/creds")]
    public void ContainerRelativeUriMustBeAPath(string relative)
    {
        Env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = relative;
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo($"The environment variable AWS_CONTAINER_CREDENTIALS_RELATIVE_URI ('{relative}') must be a path starting with '/', such as /v2/credentials/abc."));
    }

    [Test]
    public async Task ContainerFullUriPrefersTheTokenFileAndRereadsIt()
    {
        await using var server = new FakeHttpServer(_ => new Reply(200, CredentialsJson("ASIACONTAINER", "s", "t", Clock.Now.AddMinutes(20))));
        string tokenFile = Home.Write("eks-token", "pod-identity-token-1\n");
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.Url + "v1/credentials?x=1";
        Env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = tokenFile;
        Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "ignored-when-a-file-is-set";
        var chain = AwsCredentialsChain.CreateDefault(Options());
        await chain.GetCredentialsAsync();
        Assert.That(server.Requests.Single().Header("Authorization"), Is.EqualTo("pod-identity-token-1"));
        Assert.That(server.Requests.Single().Query, Is.EqualTo("x=1"));

        File.WriteAllText(tokenFile, "pod-identity-token-2");
        Clock.Advance(TimeSpan.FromMinutes(20) - TimeSpan.FromSeconds(5));
        await chain.GetCredentialsAsync();
        Assert.That(server.Requests.Last().Header("Authorization"), Is.EqualTo("pod-identity-token-2"));
    }

    [TestCase("http://example.com/creds")]
    [TestCase("http://10.0.0.1/creds")]
    [TestCase("http://169.254.169.254/latest/meta-data/")]
    [TestCase("http://[fd00:ec2::24]/creds")]
    public void ContainerFullUriRefusesPlainHttpToOtherHosts(string uri)
    {
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = uri;
        Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "secret-token-value";
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"The environment variable AWS_CONTAINER_CREDENTIALS_FULL_URI points to host '{new Uri(uri).Host}' over plain http, which is refused"));
        Assert.That(e.Message, Does.Contain("169.254.170.2, 169.254.170.23 or [fd00:ec2::23]").And.Not.Contain("secret-token-value"));
    }

    [TestCase("http://127.0.0.1:8080/", true)]
    [TestCase("http://127.9.9.9/", true)]
    [TestCase("http://localhost/", true)]
    [TestCase("http://[::1]/", true)]
    [TestCase("http://169.254.170.2/", true)]
    [TestCase("http://169.254.170.23/", true)]
    [TestCase("http://[fd00:ec2::23]/", true)]
    [TestCase("http://169.254.170.3/", false)]
    [TestCase("http://192.168.1.1/", false)]
    [TestCase("http://metadata.internal/", false)]
    public void ThePlainHttpAllowList(string uri, bool allowed) =>
        Assert.That(ContainerSource.IsAllowedPlainHttpHost(new Uri(uri)), Is.EqualTo(allowed));

    [Test]
    public void ContainerTokensWithLineBreaksAreRefusedWithoutShowingThem()
    {
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://127.0.0.1:9/creds";
        Env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = Home.Write("token", "first-secret-line\nX-Injected: yes");
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("has a line break").And.Contain("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").And.Not.Contain("first-secret-line"));
    }

    [Test]
    public async Task ContainerErrorsGiveTheStatusAndTheServiceMessage()
    {
        await using var server = new FakeHttpServer(_ => new Reply(403, """{"code":"AccessDenied","message":"Unable to authorize request"}"""));
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.Url + "creds";
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo($"The container credentials endpoint {server.Url}creds answered HTTP 403 Forbidden: AccessDenied: Unable to authorize request."));
    }

    [Test]
    public void ContainerEndpointThatIsDownIsAnError()
    {
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = $"http://127.0.0.1:{ClosedPort()}/creds";
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith("The container credentials endpoint http://127.0.0.1:").And.Contain("did not answer"));
    }

    // A URL's user-info (user:password@) may hold a secret: no message shows it, whichever way the URL fails.
    private const string Password = "pa55w0rdInUserInfo";

    [Test]
    public async Task ContainerMessagesDoNotShowTheUserInfoOfTheUri()
    {
        await using var server = new FakeHttpServer(_ => new Reply(500, """{"code":"InternalError","message":"down"}"""));
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = $"http://agent:{Password}@127.0.0.1:{server.Url.Port}/creds";
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo($"The container credentials endpoint {server.Url}creds answered HTTP 500 InternalServerError: InternalError: down."));

        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = $"http://agent:{Password}@127.0.0.1:{ClosedPort()}/creds";
        e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.ToString(), Does.Contain("did not answer").And.Not.Contain(Password).And.Not.Contain("agent"));

        await using var malformed = new FakeHttpServer(_ => Reply.Json("""{"AccessKeyId": "ASIA"}"""));
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = $"http://agent:{Password}@127.0.0.1:{malformed.Url.Port}/creds";
        e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo($"the container credentials endpoint {malformed.Url}creds gave no SecretAccessKey."));
    }

    [TestCase("AWS_CONTAINER_CREDENTIALS_FULL_URI", "ftp://agent:" + Password + "@169.254.170.2/creds", "'ftp://169.254.170.2/creds'")]
    [TestCase("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://agent:p/a?s#s" + Password + "@[bad/creds", "'http://[bad/creds'")]
    [TestCase("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "http://agent:" + Password + "@127.0.0.1/creds", "'http://127.0.0.1/creds'")]
    [TestCase("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ftp://agent:" + Password + "@169.254.169.254", "'ftp://169.254.169.254'")]
    public void MalformedCredentialsUrlsAreShownWithoutUserInfo(string variable, string value, string shown)
    {
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        Env[variable] = value;
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain($"The environment variable {variable} ({shown}) must"));
        Assert.That(e.Message, Does.Not.Contain(Password));
    }

    [Test]
    public async Task ImdsMessagesDoNotShowTheUserInfoOfTheEndpoint()
    {
        await using var server = new FakeHttpServer(_ => new Reply(404, ""));
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        Env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = $"http://imds:{Password}@127.0.0.1:{server.Url.Port}/";
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain($"EC2 instance metadata at {server.Url}: the session token request"));
        Assert.That(e.Message, Does.Not.Contain(Password));
    }

    private static int ClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>A fake IMDSv2: tokens by PUT, a role, credentials; tokens can be expired by the test.</summary>
    private sealed class FakeImds
    {
        private readonly HashSet<string> _valid = new();
        private int _tokens;

        public string Role { get; set; } = "my-instance-role";
        public Func<Reply>? Credentials { get; set; }

        public Reply Handle(ReceivedRequest r)
        {
            lock (_valid)
            {
                if (r.Method == "PUT" && r.Path == "/latest/api/token")
                {
                    if (r.Header("X-aws-ec2-metadata-token-ttl-seconds") != "21600") return new Reply(400);
                    string token = $"imds-token-{++_tokens}";
                    _valid.Add(token);
                    return new Reply(200, token, "text/plain");
                }
                if (r.Method != "GET") return new Reply(405);
                if (r.Header("X-aws-ec2-metadata-token") is not { } sent || !_valid.Contains(sent)) return new Reply(401);
            }
            if (r.Path == "/latest/meta-data/iam/security-credentials/")
                return Role.Length == 0 ? new Reply(404) : new Reply(200, Role + "\n", "text/plain");
            if (r.Path == "/latest/meta-data/iam/security-credentials/" + Role)
                return Credentials?.Invoke() ?? Reply.Json(CredentialsJson("ASIAIMDS", "imdsSecret", "imdsToken", new DateTimeOffset(2030, 1, 1, 18, 0, 0, TimeSpan.Zero)));
            return new Reply(404);
        }

        public void ExpireTokens()
        {
            lock (_valid) _valid.Clear();
        }
    }

    [Test]
    public async Task ImdsV2TakesATokenFirstThenTheRoleThenItsCredentials()
    {
        var imds = new FakeImds();
        await using var server = new FakeHttpServer(imds.Handle);
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        var chain = AwsCredentialsChain.CreateDefault(Options(imds: server.Url));
        var credentials = await chain.GetCredentialsAsync();
        Assert.That((credentials.AccessKeyId, credentials.SecretAccessKey, credentials.SessionToken), Is.EqualTo(("ASIAIMDS", "imdsSecret", "imdsToken")));
        Assert.That(chain.Source, Is.EqualTo("EC2 instance metadata"));
        Assert.That(server.Requests.Select(r => $"{r.Method} {r.Path} {r.Header("X-aws-ec2-metadata-token")}"), Is.EqualTo(new[]
        {
            "PUT /latest/api/token ",
            "GET /latest/meta-data/iam/security-credentials/ imds-token-1",
            "GET /latest/meta-data/iam/security-credentials/my-instance-role imds-token-1",
        }));
    }

    [Test]
    public async Task ImdsAnExpiredTokenIs401ThenANewTokenIsTaken()
    {
        var imds = new FakeImds { Credentials = () => Reply.Json(CredentialsJson("ASIAIMDS", "imdsSecret", "imdsToken", Clock.Now.AddMinutes(30))) };
        await using var server = new FakeHttpServer(imds.Handle);
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        var chain = AwsCredentialsChain.CreateDefault(Options(imds: server.Url));
        await chain.GetCredentialsAsync();

        // The server forgets its tokens (a restart, or a TTL shorter than the client thinks): the client's still looks valid.
        imds.ExpireTokens();
        Clock.Advance(TimeSpan.FromMinutes(30) - TimeSpan.FromSeconds(1));
        var credentials = await chain.GetCredentialsAsync();
        Assert.That(credentials.AccessKeyId, Is.EqualTo("ASIAIMDS"));
        Assert.That(server.Requests.Skip(3).Select(r => $"{r.Method} {r.Path} {r.Header("X-aws-ec2-metadata-token")}"), Is.EqualTo(new[]
        {
            "GET /latest/meta-data/iam/security-credentials/ imds-token-1",
            "PUT /latest/api/token ",
            "GET /latest/meta-data/iam/security-credentials/ imds-token-2",
            "GET /latest/meta-data/iam/security-credentials/my-instance-role imds-token-2",
        }));
    }

    [Test]
    public async Task ImdsEndpointFromTheEnvironment()
    {
        var imds = new FakeImds();
        await using var server = new FakeHttpServer(imds.Handle);
        Env["AWS_EC2_METADATA_DISABLED"] = "false";
        Env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.Url.ToString().TrimEnd('/');
        Assert.That((await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync()).AccessKeyId, Is.EqualTo("ASIAIMDS"));
    }

    [Test]
    public async Task ImdsDisabledIsNotCalled()
    {
        var imds = new FakeImds();
        await using var server = new FakeHttpServer(imds.Handle);
        Env["AWS_EC2_METADATA_DISABLED"] = "TRUE";
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options(imds: server.Url)).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("EC2 instance metadata: disabled by AWS_EC2_METADATA_DISABLED=true"));
        Assert.That(server.Requests, Is.Empty);
    }

    // AWS_EC2_METADATA_DISABLED is true or false, like every other flag: a typo is an error, not a silent "enabled".
    [TestCase("yes")]
    [TestCase("1")]
    public async Task ImdsDisabledWithAnotherValueIsAnError(string value)
    {
        var imds = new FakeImds();
        await using var server = new FakeHttpServer(imds.Handle);
        Env["AWS_EC2_METADATA_DISABLED"] = value;
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await AwsCredentialsChain.CreateDefault(Options(imds: server.Url)).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo($"The environment variable AWS_EC2_METADATA_DISABLED must be true or false (it is '{value}')."));
        Assert.That(server.Requests, Is.Empty);
    }

    [Test]
    public void ImdsEndpointFromTheEnvironmentMustBeAnHttpOrHttpsUrl()
    {
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        Env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "ftp://169.254.169.254";
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo("The environment variable AWS_EC2_METADATA_SERVICE_ENDPOINT ('ftp://169.254.169.254') must be an absolute http or https URL, such as http://169.254.169.254."));
    }

    [Test]
    public async Task ImdsWithoutARoleSaysSo()
    {
        var imds = new FakeImds { Role = "" };
        await using var server = new FakeHttpServer(imds.Handle);
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options(imds: server.Url)).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain($"EC2 instance metadata at {server.Url}: no IAM role is attached to this instance"));
    }

    [Test]
    public void ImdsThatIsNotThereIsTheLastReasonInTheError()
    {
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () =>
            await AwsCredentialsChain.CreateDefault(Options(imds: new Uri($"http://127.0.0.1:{ClosedPort()}/"))).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Match(@"\n  - EC2 instance metadata at http://127\.0\.0\.1:\d+/: .+\nSet AWS_ACCESS_KEY_ID"));
    }

    [Test]
    public async Task ImdsCredentialsWithAFailureCodeAreNotUsed()
    {
        var imds = new FakeImds { Credentials = () => Reply.Json("""{"Code":"AssumeRoleUnauthorizedAccess","Message":"EC2 cannot assume the role"}""") };
        await using var server = new FakeHttpServer(imds.Handle);
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options(imds: server.Url)).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("answered Code AssumeRoleUnauthorizedAccess: EC2 cannot assume the role"));
    }

    [Test]
    public async Task ImdsRefusingTokensIsExplained()
    {
        await using var server = new FakeHttpServer(_ => new Reply(403));
        Env["AWS_EC2_METADATA_DISABLED"] = null;
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options(imds: server.Url)).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("refused with HTTP 403: instance metadata is disabled or blocked"));
    }
}
