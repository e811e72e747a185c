using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>
/// Profile credentials: static keys, role_arn chains through a fake STS that verifies our signatures, web identity,
/// credential_process with real scripts, and the errors of each.
/// </summary>
public class CredentialsProfileTests : CredentialsTestBase
{
    private FakeSts _sts = null!;
    private readonly AwsCredentials _longTerm = new(LongTermId, LongTermSecret);

    [SetUp]
    public void StartSts()
    {
        _sts = new FakeSts(Clock);
        _sts.Trust(_longTerm);
        Env["AWS_REGION"] = FakeSts.Region;
    }

    [TearDown]
    public async Task StopSts() => await _sts.DisposeAsync();

    private AwsCredentialsChain Chain(string? profile = null) => AwsCredentialsChain.CreateDefault(Options(_sts.Server.Url, profile: profile));

    private const string Base = $"""
        [profile base]
        aws_access_key_id = {LongTermId}
        aws_secret_access_key = {LongTermSecret}

        """;

    [Test]
    public async Task StaticKeysFromFilesNamedByTheEnvironment()
    {
        Home.Write("creds.ini", "[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = workSecret\naws_session_token = workToken\n");
        Home.Write("config.ini", "[profile work]\nregion = eu-west-1\n");
        Env["AWS_SHARED_CREDENTIALS_FILE"] = Path.Combine(Home.Directory, "creds.ini");
        Env["AWS_CONFIG_FILE"] = Path.Combine(Home.Directory, "config.ini");
        Env["AWS_PROFILE"] = "work";
        var chain = Chain();
        var credentials = await chain.GetCredentialsAsync();
        Assert.That((credentials.AccessKeyId, credentials.SecretAccessKey, credentials.SessionToken), Is.EqualTo(("AKIDWORK", "workSecret", "workToken")));
        Assert.That(chain.Source, Is.EqualTo("profile 'work'"));
    }

    [Test]
    public async Task RoleArnWithSourceProfileAssumesTheRoleWithASignedCall()
    {
        Home.WriteConfig(Base + """
            [profile dev]
            role_arn = arn:aws:iam::123456789012:role/dev
            source_profile = base
            role_session_name = my-session
            external_id = ext-123
            duration_seconds = 1800
            """);
        var credentials = await Chain("dev").GetCredentialsAsync();

        var call = _sts.Calls.Single();
        Assert.That(call.Action, Is.EqualTo("AssumeRole"));
        Assert.That(call.SignedBy, Is.EqualTo(LongTermId), "the fake STS verified the signature with the source profile's keys");
        Assert.That(call.Form, Is.EquivalentTo(new Dictionary<string, string>
        {
            ["Action"] = "AssumeRole", ["Version"] = "2011-06-15", ["RoleArn"] = "arn:aws:iam::123456789012:role/dev",
            ["RoleSessionName"] = "my-session", ["ExternalId"] = "ext-123", ["DurationSeconds"] = "1800",
        }));
        var issued = _sts.Issued(credentials.AccessKeyId)!;
        Assert.That((credentials.SecretAccessKey, credentials.SessionToken, credentials.Expiration),
            Is.EqualTo((issued.SecretAccessKey, issued.SessionToken, Start.AddHours(1))));
        var request = _sts.Server.Requests.Single();
        Assert.That(request.Header("Content-Type"), Is.EqualTo("application/x-www-form-urlencoded; charset=utf-8"));
        Assert.That(request.Header("Authorization"), Does.Contain($"Credential={LongTermId}/20300101/{FakeSts.Region}/sts/aws4_request"));
    }

    [Test]
    public async Task RoleChainsTwoLevelsDeepSignEachCallWithThePreviousCredentials()
    {
        Home.WriteConfig(Base + """
            [profile middle]
            role_arn = arn:aws:iam::123456789012:role/middle
            source_profile = base
            [profile top]
            role_arn = arn:aws:iam::210987654321:role/top
            source_profile = middle
            """);
        var credentials = await Chain("top").GetCredentialsAsync();

        var calls = _sts.Calls.ToArray();
        Assert.That(calls.Select(c => c.Form["RoleArn"]), Is.EqualTo(new[] { "arn:aws:iam::123456789012:role/middle", "arn:aws:iam::210987654321:role/top" }));
        Assert.That(calls[0].SignedBy, Is.EqualTo(LongTermId));
        Assert.That(calls[1].SignedBy, Is.EqualTo("ASIASTS0000000000001"), "the second call is signed with the first role's credentials");
        Assert.That(_sts.Server.Requests.Last().Header("X-Amz-Security-Token"), Is.EqualTo(_sts.Issued("ASIASTS0000000000001")!.SessionToken));
        Assert.That(credentials.AccessKeyId, Is.EqualTo("ASIASTS0000000000002"));
        Assert.That(calls[0].Form["RoleSessionName"], Does.StartWith("sigv4lite-"));
    }

    [Test]
    public async Task ASourceProfilesOwnKeysWinOverItsRole()
    {
        Home.WriteConfig($"""
            [profile base]
            aws_access_key_id = {LongTermId}
            aws_secret_access_key = {LongTermSecret}
            role_arn = arn:aws:iam::123456789012:role/not-used
            source_profile = elsewhere
            [profile dev]
            role_arn = arn:aws:iam::123456789012:role/dev
            source_profile = base
            """);
        await Chain("dev").GetCredentialsAsync();
        Assert.That(_sts.Calls.Single().Form["RoleArn"], Is.EqualTo("arn:aws:iam::123456789012:role/dev"));
    }

    [Test]
    public async Task AProfileMayBeItsOwnSource()
    {
        Home.WriteConfig($"""
            [profile self]
            aws_access_key_id = {LongTermId}
            aws_secret_access_key = {LongTermSecret}
            role_arn = arn:aws:iam::123456789012:role/self
            source_profile = self
            """);
        var credentials = await Chain("self").GetCredentialsAsync();
        Assert.That(_sts.Calls.Single().SignedBy, Is.EqualTo(LongTermId));
        Assert.That(credentials.AccessKeyId, Does.StartWith("ASIASTS"));
    }

    [Test]
    public async Task CredentialSourceEnvironmentFeedsTheRole()
    {
        Home.WriteConfig("[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\ncredential_source = Environment\n");
        Env["AWS_ACCESS_KEY_ID"] = LongTermId;
        Env["AWS_SECRET_ACCESS_KEY"] = LongTermSecret;
        // The profile is set in code, so the chain's own environment link is skipped: the keys only sign the AssumeRole.
        var chain = Chain("dev");
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Does.StartWith("ASIASTS"));
        Assert.That(_sts.Calls.Single().SignedBy, Is.EqualTo(LongTermId));
        Assert.That(chain.Source, Is.EqualTo("profile 'dev'"));
    }

    [Test]
    public void ASourceProfileLoopIsAnErrorThatShowsTheLoop()
    {
        Home.WriteConfig("""
            [profile a]
            role_arn = arn:aws:iam::123456789012:role/a
            source_profile = b
            [profile b]
            role_arn = arn:aws:iam::123456789012:role/b
            source_profile = a
            """);
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain("a").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"The profiles form a loop through source_profile: a -> b -> a ({Home.ConfigPath} line 6)."));
        Assert.That((e.FilePath, e.LineNumber, e.ProfileName), Is.EqualTo((Home.ConfigPath, 6, "b")));
        Assert.That(_sts.Calls, Is.Empty);
    }

    [Test]
    public void ASelfSourceWithoutKeysIsALoop()
    {
        Home.WriteConfig("[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = a\n");
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain("a").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith("The profiles form a loop through source_profile: a -> a"));
    }

    [Test]
    public void AMissingSourceProfileIsNamed()
    {
        Home.WriteConfig("[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = bsae\n");
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"Profile 'dev' has source_profile = bsae ({Home.ConfigPath} line 3), but there is no profile 'bsae' in "));
        Assert.That((e.LineNumber, e.ProfileName), Is.EqualTo((3, "dev")));
    }

    [Test]
    public void ASourceProfileWithoutCredentialsIsNamed()
    {
        Home.WriteConfig("[profile base]\nregion = eu-west-1\n[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n");
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"Profile 'base' ({Home.ConfigPath} line 1) is the source_profile of 'dev' but has no credentials"));
    }

    [Test]
    public void ARoleWithoutASourceIsNamed()
    {
        Home.WriteConfig("[profile dev]\n\nrole_arn = arn:aws:iam::123456789012:role/dev\n");
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That((e.LineNumber, e.ProfileName), Is.EqualTo((3, "dev")));
        Assert.That(e.Message, Does.Contain("add source_profile, credential_source or web_identity_token_file"));
    }

    [Test]
    public void HalfAStaticKeyPairNamesTheLineNotTheSecret()
    {
        Home.WriteCredentials($"[default]\n\naws_secret_access_key = {LongTermSecret}\n");
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain().GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo($"Profile 'default' has aws_secret_access_key ({Home.CredentialsPath} line 3) but no aws_access_key_id; give both."));
        AssertNoSecret(e.Message, _longTerm);
    }

    [Test]
    public void StsErrorsCarryCodeAndMessageButNoSecret()
    {
        Home.WriteConfig(Base + "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n");
        _sts.Override = _ => FakeSts.Error(403, "AccessDenied", "User: arn:aws:iam::123456789012:user/base is not authorized to perform: sts:AssumeRole");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo(
            $"STS AssumeRole for role arn:aws:iam::123456789012:role/dev at {_sts.Server.Url} failed: STS AssumeRole answered 403 AccessDenied: " +
            "User: arn:aws:iam::123456789012:user/base is not authorized to perform: sts:AssumeRole (request id 4a8b6e0e-0000-4000-8000-000000000000)"));
        Assert.That(e.InnerException, Is.InstanceOf<AwsServiceException>().With.Property("ErrorCode").EqualTo("AccessDenied"));
        Assert.That(e.ProfileName, Is.EqualTo("dev"));
        AssertNoSecret(e.Message, _longTerm);
    }

    [Test]
    public void StsErrorsSayWhereAndAnEndpointWithUserInfoIsRefusedWithoutShowingIt()
    {
        Home.WriteConfig(Base + "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n");
        _sts.Override = _ => FakeSts.Error(403, "AccessDenied", "no");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options(_sts.Server.Url, profile: "dev")).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"STS AssumeRole for role arn:aws:iam::123456789012:role/dev at {_sts.Server.Url} failed: STS AssumeRole answered 403 AccessDenied: no"));

        var endpoint = new Uri($"http://proxyuser:pa55w0rd@127.0.0.1:{_sts.Server.Url.Port}/");
        var refused = Assert.Throws<ArgumentException>(() => Options(endpoint, profile: "dev"))!;
        Assert.That(refused.ParamName, Is.EqualTo("StsEndpoint"));
        Assert.That(refused.Message, Does.StartWith($"The endpoint '{_sts.Server.Url}' has user-info").And.Not.Contain("pa55w0rd"));
    }

    [Test]
    public void KeysStsDoesNotKnowAreRefusedByTheVerifier()
    {
        Home.WriteConfig("[profile base]\naws_access_key_id = AKIDUNKNOWN\naws_secret_access_key = unknownSecret\n" +
                         "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("answered 403 SignatureDoesNotMatch: UnknownAccessKey"));
        Assert.That(e.Message, Does.Not.Contain("unknownSecret"));
    }

    [Test]
    public void MalformedStsXmlIsReportedByPosition()
    {
        Home.WriteConfig(Base + "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n");
        _sts.Override = _ => new Reply(200, "<AssumeRoleResponse><Credentials><SecretAccessKey>leakedSecret</SecretAccessKey>", "text/xml");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("answered with malformed XML (line 1").And.Not.Contain("leakedSecret"));
    }

    [Test]
    public async Task WebIdentityFromTheEnvironmentIsUnsignedAndRereadsTheTokenOnRefresh()
    {
        string tokenFile = Home.Write("token", "eyJhbGciOiJSUzI1NiJ9.first\n");
        Env["AWS_WEB_IDENTITY_TOKEN_FILE"] = tokenFile;
        Env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/web";
        Env["AWS_ROLE_SESSION_NAME"] = "pod-1";
        var chain = Chain();
        var first = await chain.GetCredentialsAsync();
        Assert.That(chain.Source, Is.EqualTo("web identity token file"));
        var call = _sts.Calls.Single();
        Assert.That(call.Action, Is.EqualTo("AssumeRoleWithWebIdentity"));
        Assert.That(call.SignedBy, Is.Null);
        Assert.That(_sts.Server.Requests.Single().Header("Authorization"), Is.Null);
        Assert.That(call.Form["WebIdentityToken"], Is.EqualTo("eyJhbGciOiJSUzI1NiJ9.first"));
        Assert.That(call.Form["RoleSessionName"], Is.EqualTo("pod-1"));
        Assert.That(first.Expiration, Is.EqualTo(Start.AddHours(1)));

        File.WriteAllText(tokenFile, "eyJhbGciOiJSUzI1NiJ9.second");
        Clock.Advance(TimeSpan.FromHours(1) - TimeSpan.FromSeconds(10));
        var second = await chain.GetCredentialsAsync();
        Assert.That(second.AccessKeyId, Is.Not.EqualTo(first.AccessKeyId), "past the usable time, the caller waits for new credentials");
        Assert.That(_sts.Calls.Last().Form["WebIdentityToken"], Is.EqualTo("eyJhbGciOiJSUzI1NiJ9.second"));
    }

    [Test]
    public async Task WebIdentityFromAProfile()
    {
        string tokenFile = Home.Write("token", "eyJhbGciOiJSUzI1NiJ9.profile");
        Home.WriteConfig($"[profile eks]\nrole_arn = arn:aws:iam::123456789012:role/eks\nweb_identity_token_file = {tokenFile}\n");
        var credentials = await Chain("eks").GetCredentialsAsync();
        Assert.That(credentials.AccessKeyId, Does.StartWith("ASIASTS"));
        Assert.That(_sts.Calls.Single().Form["WebIdentityToken"], Is.EqualTo("eyJhbGciOiJSUzI1NiJ9.profile"));
    }

    [Test]
    public void WebIdentityErrorsDoNotShowTheToken()
    {
        string tokenFile = Home.Write("token", "eyJhbGciOiJSUzI1NiJ9.secretToken");
        Env["AWS_WEB_IDENTITY_TOKEN_FILE"] = tokenFile;
        Env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/web";
        _sts.Override = _ => FakeSts.Error(400, "InvalidIdentityToken", "Token is expired");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain().GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("AssumeRoleWithWebIdentity").And.Contain("InvalidIdentityToken: Token is expired"));
        Assert.That(e.Message, Does.Not.Contain("secretToken"));

        File.Delete(tokenFile);
        e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain().GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"Cannot read the web identity token file {tokenFile}"));
    }

    [TestCase("credential_source = Bogus", 6, "it must be Environment, Ec2InstanceMetadata or EcsContainer")]
    [TestCase("source_profile = base\nmfa_serial = arn:aws:iam::123456789012:mfa/me", 7, "needs an MFA code typed in")]
    [TestCase("source_profile = base\nduration_seconds = 60", 7, "must be a whole number from 900 to 43200")]
    public void RoleSettingsThatCannotWorkAreNamed(string settings, int line, string expected)
    {
        Home.WriteConfig(Base + "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\n" + settings + "\n");
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain(expected).And.Contain("'dev'"));
        Assert.That((e.FilePath, e.LineNumber, e.ProfileName), Is.EqualTo((Home.ConfigPath, line, "dev")));
        Assert.That(_sts.Calls, Is.Empty);
    }

    [Test]
    public void AMissingProfileChosenByAwsProfileStopsTheChain()
    {
        Home.WriteCredentials($"[default]\naws_access_key_id = {LongTermId}\naws_secret_access_key = {LongTermSecret}\n");
        Env["AWS_PROFILE"] = "stagign";
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain().GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith("The AWS profile 'stagign' (from AWS_PROFILE) is not in ").And.Contain("The profiles there are: default."));
        AssertNoSecret(e.Message, _longTerm);
    }

    // credential_process: real bash scripts.

    private string Script(string name, string body) => Home.Write(name, "#!/bin/bash\n" + body + "\n");

    [Test]
    public async Task CredentialProcessRunsTheCommandAndReadsItsJson()
    {
        string counter = Path.Combine(Home.Directory, "runs");
        string script = Script("good.sh", $$"""
            echo run >> '{{counter}}'
            echo "diagnostics go to stderr" >&2
            cat <<EOF
            {"Version": 1, "AccessKeyId": "ASIAPROCESS", "SecretAccessKey": "processSecret", "SessionToken": "processToken",
             "Expiration": "2030-01-01T13:00:00Z", "Unknown": {"nested": [1, 2]} }
            EOF
            """);
        Home.WriteConfig($"[profile proc]\ncredential_process = bash {script} --flag \"quoted arg\"\n");
        var chain = Chain("proc");
        var credentials = await chain.GetCredentialsAsync();
        Assert.That((credentials.AccessKeyId, credentials.SecretAccessKey, credentials.SessionToken, credentials.Expiration),
            Is.EqualTo(("ASIAPROCESS", "processSecret", "processToken", (DateTimeOffset?)Start.AddHours(1))));
        Assert.That(File.ReadAllLines(counter), Has.Length.EqualTo(1));
        await chain.GetCredentialsAsync();
        Assert.That(File.ReadAllLines(counter), Has.Length.EqualTo(1), "valid credentials are reused");
    }

    [Test]
    public void CredentialProcessWithBadJsonShowsThePositionNotTheOutput()
    {
        string script = Script("bad.sh", """echo '{"Version": 1, "AccessKeyId": "ASIAPROCESS", "SecretAccessKey": "leakedSecret" "SessionToken": 1}'""");
        Home.WriteConfig($"[profile proc]\nregion = eu-west-1\ncredential_process = bash {script}\n");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("proc").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"The credential_process of profile 'proc' ({Home.ConfigPath} line 3) printed malformed JSON (line 1, byte "));
        Assert.That(e.Message, Does.Not.Contain("leakedSecret"));
        Assert.That(e.ProfileName, Is.EqualTo("proc"));
    }

    [Test]
    public void CredentialProcessThatFailsShowsItsExitCodeAndErrorOutputButNotTheCommand()
    {
        string script = Script("fail.sh", "echo 'session expired: run corp-login' >&2\nexit 3");
        Home.WriteConfig($"[profile proc]\ncredential_process = bash {script} --password hunter2secret\n");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("proc").GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo($"The credential_process of profile 'proc' ({Home.ConfigPath} line 2) exited with code 3: session expired: run corp-login."));
        Assert.That(e.Message, Does.Not.Contain("hunter2secret"));
    }

    // A script run with `set -x` traces each command to its error output, keys included: only the first line is shown.
    [Test]
    public void CredentialProcessThatFailsShowsOnlyTheFirstLineOfItsErrorOutput()
    {
        string script = Script("trace.sh", "echo 'token expired: run corp-login' >&2\necho '+ export AWS_SECRET_ACCESS_KEY=tracedSecretValue' >&2\nexit 2");
        Home.WriteConfig($"[profile proc]\ncredential_process = bash {script}\n");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("proc").GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo($"The credential_process of profile 'proc' ({Home.ConfigPath} line 2) exited with code 2: token expired: run corp-login."));
    }

    [Test]
    public void CredentialProcessErrorOutputIsClipped()
    {
        string script = Script("long.sh", "printf 'e%.0s' {1..2000} >&2\nexit 1");
        Home.WriteConfig($"[profile proc]\ncredential_process = bash {script}\n");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("proc").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.EndWith("exited with code 1: " + new string('e', 500) + "...."));
    }

    [TestCase("""{"AccessKeyId": "ASIAPROCESS", "SecretAccessKey": "leakedSecret"}""", "without \"Version\": 1")]
    [TestCase("""{"Version": 2, "AccessKeyId": "ASIAPROCESS", "SecretAccessKey": "leakedSecret"}""", "without \"Version\": 1")]
    [TestCase("""{"Version": 1, "AccessKeyId": "ASIAPROCESS"}""", "gave no SecretAccessKey")]
    [TestCase("""{"Version": 1, "AccessKeyId": "ASIAPROCESS", "SecretAccessKey": "leakedSecret", "Expiration": "soon"}""", "gave an Expiration 'soon' that is not an ISO 8601 time")]
    [TestCase("""["leakedSecret"]""", "printed something that is not a JSON object")]
    public void CredentialProcessWithIncompleteJson(string json, string expected)
    {
        string script = Script("partial.sh", $"cat <<'EOF'\n{json}\nEOF");
        Home.WriteConfig($"[profile proc]\ncredential_process = bash {script}\n");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("proc").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain(expected).And.Contain("profile 'proc'"));
        Assert.That(e.Message, Does.Not.Contain("leakedSecret"));
    }

    private const string ProcessJson = """{"Version": 1, "AccessKeyId": "ASIAPROCESS", "SecretAccessKey": "processSecret"}""";

    // A process still running, or a zombie that was not reaped: either is "not ended" (Linux's /proc).
    private static bool IsRunning(int pid) =>
        File.Exists($"/proc/{pid}/stat") && File.ReadAllText($"/proc/{pid}/stat").Split(") ")[^1][0] is not ('Z' or 'X');

    private static async Task<bool> EndsWithin(TimeSpan time, params int[] pids)
    {
        for (var waited = TimeSpan.Zero; waited < time; waited += TimeSpan.FromMilliseconds(50))
        {
            if (!pids.Any(IsRunning)) return true;
            await Task.Delay(50);
        }
        return false;
    }

    private int ReadPid(string name) => int.Parse(File.ReadAllText(Path.Combine(Home.Directory, name)).Trim());

    [Test]
    public async Task CredentialProcessThatLeavesAChildHoldingItsOutputIsNotWaitedFor()
    {
        string script = Script("daemon.sh", $"sleep 120 &\necho $! > '{Home.Directory}/child'\necho '{ProcessJson}'");
        Home.WriteConfig($"[profile proc]\ncredential_process = bash {script}\n");
        try
        {
            var call = Chain("proc").GetCredentialsAsync().AsTask();
            Assert.That(await Task.WhenAny(call, Task.Delay(TimeSpan.FromSeconds(60))), Is.SameAs(call),
                "the credentials are read once the process has exited and printed a whole JSON object, not when the child ends");
            Assert.That((await call).AccessKeyId, Is.EqualTo("ASIAPROCESS"));
            Assert.That(IsRunning(ReadPid("child")), Is.True, "the child still holds the output");
        }
        finally
        {
            try { System.Diagnostics.Process.GetProcessById(ReadPid("child")).Kill(); } catch (ArgumentException) { }
        }
    }

    [Test]
    public async Task CredentialProcessOutputIsReadUpToOneMegabyte()
    {
        int padding = CredentialProcess.MaxOutput - ProcessJson.Length;
        string script = Script("big.sh", $"head -c {padding} /dev/zero | tr '\\0' ' '\nprintf '%s' '{ProcessJson}'");
        Home.WriteConfig($"[profile proc]\ncredential_process = bash {script}\n");
        Assert.That((await Chain("proc").GetCredentialsAsync()).AccessKeyId, Is.EqualTo("ASIAPROCESS"), "exactly 1 MB is read");

        File.WriteAllText(script, File.ReadAllText(script).Replace($"head -c {padding}", $"head -c {padding + 1}"));
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("proc").GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo(
            $"The credential_process of profile 'proc' ({Home.ConfigPath} line 2) printed more than 1,048,576 bytes, the most SigV4Lite reads, and was stopped; " +
            "it must print one JSON object with the credentials."));
    }

    [Test]
    public async Task CredentialProcessThatPrintsWithoutEndIsStoppedAtTheLimit()
    {
        string script = Script("endless.sh", $"echo $$ > '{Home.Directory}/pid'\nexec yes '{ProcessJson.Replace("processSecret", "leakedSecret")}'");
        Home.WriteConfig($"[profile proc]\ncredential_process = bash {script}\n");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("proc").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("printed more than 1,048,576 bytes").And.Not.Contain("leakedSecret"));
        Assert.That(await EndsWithin(TimeSpan.FromSeconds(10), ReadPid("pid")), Is.True, "the process is stopped");
    }

    [Test]
    public async Task CancellingCredentialProcessEndsItsWholeProcessTree()
    {
        string script = Script("tree.sh", $"echo $$ > '{Home.Directory}/pid'\nsleep 120 &\necho $! > '{Home.Directory}/child'\nwait");
        Home.WriteConfig($"[profile proc]\ncredential_process = bash {script}\n");
        var command = new AwsConfigContext(Options(profile: "proc")).Files.FindProfile("proc", null)!.Get("credential_process")!;
        using var cancel = new CancellationTokenSource();
        var run = CredentialProcess.RunAsync(command, "proc", cancel.Token);
        while (!File.Exists(Path.Combine(Home.Directory, "child")) || File.ReadAllText(Path.Combine(Home.Directory, "child")).Length == 0) await Task.Delay(20);
        int[] pids = [ReadPid("pid"), ReadPid("child")];
        Assert.That(pids.All(IsRunning));
        cancel.Cancel();
        Assert.CatchAsync<OperationCanceledException>(async () => await run);
        Assert.That(await EndsWithin(TimeSpan.FromSeconds(10), pids), Is.True, "the shell and the child it started are both stopped");
    }

    [Test]
    public async Task CredentialProcessCanSourceARole()
    {
        string script = Script("base.sh", $$"""echo '{"Version": 1, "AccessKeyId": "{{LongTermId}}", "SecretAccessKey": "{{LongTermSecret}}"}'""");
        Home.WriteConfig($"[profile base]\ncredential_process = bash {script}\n[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n");
        var credentials = await Chain("dev").GetCredentialsAsync();
        Assert.That(_sts.Calls.Single().SignedBy, Is.EqualTo(LongTermId));
        Assert.That(credentials.AccessKeyId, Does.StartWith("ASIASTS"));
    }
}
