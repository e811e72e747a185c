using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>
/// IAM Identity Center (SSO) profiles, both forms, against a fake SSO portal and SSO OIDC on loopback (reached through
/// AWS_ENDPOINT_URL_SSO and AWS_ENDPOINT_URL_SSO_OIDC) with the token cache of `aws sso login` in a temporary home.
/// </summary>
public class CredentialsSsoTests : CredentialsTestBase
{
    private const string StartUrl = "https://d-abc123.awsapps.com/start";
    private const string CachedToken = "aoaCACHEDACCESSTOKEN0123456789abcdef";
    private const string CachedRefreshToken = "AtzrCACHEDREFRESHTOKEN0123456789abcdef";

    private const string SessionConfig = $"""
        [profile dev]
        sso_session = corp
        sso_account_id = {FakeSso.AccountId}
        sso_role_name = {FakeSso.RoleName}
        region = eu-west-1

        [sso-session corp]
        sso_start_url = {StartUrl}
        sso_region = us-east-1
        sso_registration_scopes = sso:account:access
        """;

    private const string LegacyConfig = $"""
        [profile old]
        sso_start_url = {StartUrl}
        sso_region = us-east-1
        sso_account_id = {FakeSso.AccountId}
        sso_role_name = {FakeSso.RoleName}
        """;

    private FakeSso _sso = null!;

    [SetUp]
    public void StartSso()
    {
        _sso = new FakeSso(Clock);
        _sso.AcceptAccessToken(CachedToken);
        _sso.AcceptRefreshToken(CachedRefreshToken);
        Env["AWS_ENDPOINT_URL_SSO"] = _sso.Portal.Url.ToString();
        Env["AWS_ENDPOINT_URL_SSO_OIDC"] = _sso.Oidc.Url.ToString();
    }

    [TearDown]
    public async Task StopSso() => await _sso.DisposeAsync();

    private AwsCredentialsChain Chain(string profile, Uri? sts = null) => AwsCredentialsChain.CreateDefault(Options(sts, profile: profile));

    private string CachePath(string key) =>
        Path.Combine(Home.Directory, ".aws", "sso", "cache", Convert.ToHexString(SHA1.HashData(Encoding.UTF8.GetBytes(key))).ToLowerInvariant() + ".json");

    // A token file as `aws sso login` writes it (session form: with the client registration and refresh token).
    private string CacheToken(string key, DateTimeOffset expiresAt, bool refreshable = true, string accessToken = CachedToken, string extra = "")
    {
        string path = CachePath(key);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string registration = refreshable
            ? $"""
              , "clientId": "{FakeSso.ClientId}", "clientSecret": "{FakeSso.ClientSecret}", "registrationExpiresAt": "2030-03-01T00:00:00Z",
              "refreshToken": "{CachedRefreshToken}"
              """
            : "";
        File.WriteAllText(path, $$"""
            {"startUrl": "{{StartUrl}}", "region": "us-east-1", "accessToken": "{{accessToken}}",
             "expiresAt": "{{expiresAt.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}}"{{registration}}{{extra}}}
            """);
        return path;
    }

    // The session profile 'dev', after `aws sso login`: a token with 8 hours left.
    private string SignIn()
    {
        Home.WriteConfig(SessionConfig);
        return CacheToken("corp", Start.AddHours(8));
    }

    private void AssertNoSsoSecret(string text)
    {
        foreach (string secret in _sso.Secrets.Append(CachedToken).Append(CachedRefreshToken))
            Assert.That(text, Does.Not.Contain(secret), "no token, refresh token, client secret or key may be shown");
    }

    [Test]
    public async Task ASessionProfileTradesTheCachedTokenForRoleCredentialsWithAnUnsignedCall()
    {
        SignIn();
        var chain = Chain("dev");
        var credentials = await chain.GetCredentialsAsync();

        var issued = _sso.Issued.Single();
        Assert.That((credentials.AccessKeyId, credentials.SecretAccessKey, credentials.SessionToken, credentials.Expiration),
            Is.EqualTo((issued.AccessKeyId, issued.SecretAccessKey, issued.SessionToken, (DateTimeOffset?)Start.AddHours(1))));
        Assert.That(chain.Source, Is.EqualTo("profile 'dev'"));
        var request = _sso.Portal.Requests.Single();
        Assert.That((request.Method, request.Path, request.Query),
            Is.EqualTo(("GET", "/federation/credentials", $"account_id={FakeSso.AccountId}&role_name={FakeSso.RoleName}")));
        Assert.That(request.Header("x-amz-sso_bearer_token"), Is.EqualTo(CachedToken));
        Assert.That(request.Header("Authorization"), Is.Null, "GetRoleCredentials is not SigV4-signed");
        Assert.That(request.Header("X-Amz-Date"), Is.Null);
        Assert.That(_sso.OidcCalls, Is.Empty, "a token with hours left is not refreshed");
    }

    [Test]
    public async Task ALegacyProfileReadsTheTokenCachedUnderItsStartUrl()
    {
        Home.WriteConfig(LegacyConfig);
        CacheToken(StartUrl, Start.AddHours(8), refreshable: false);
        var credentials = await Chain("old").GetCredentialsAsync();
        Assert.That(credentials.AccessKeyId, Is.EqualTo(_sso.Issued.Single().AccessKeyId));
        Assert.That(_sso.PortalTokens.Single(), Is.EqualTo(CachedToken));
    }

    // The vectors are botocore's own (tests/unit/test_utils.py, TestSSOTokenLoader): SHA-1 of the session name "admin"
    // and of the start URL https://d-abc123.awsapps.com/start.
    [Test]
    public void TheCacheFileIsNamedAfterTheSha1OfTheSessionNameOrTheStartUrl()
    {
        Assert.That(SsoTokenCache.PathFor("/home/me", "admin"),
            Is.EqualTo(Path.Join("/home/me", ".aws", "sso", "cache", "d033e22ae348aeb5660fc2140aec35850c4da997.json")));
        Assert.That(SsoTokenCache.PathFor("/home/me", StartUrl),
            Is.EqualTo(Path.Join("/home/me", ".aws", "sso", "cache", "40a89917e3175433e361b710a9d43528d7f1890a.json")));
    }

    [Test]
    public void ASessionProfileDoesNotUseATokenCachedUnderTheStartUrl()
    {
        Home.WriteConfig(SessionConfig);
        CacheToken(StartUrl, Start.AddHours(8));
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo(
            $"Profile 'dev' signs in with IAM Identity Center (sso-session 'corp'), but there is no SSO token cached for it ({CachePath("corp")} does not exist). " +
            "Run aws sso login --profile dev, then try again."));
        Assert.That(e.ProfileName, Is.EqualTo("dev"));
        Assert.That(_sso.Portal.Requests, Is.Empty);
    }

    [Test]
    public async Task RoleCredentialsAreKeptUntilFiveMinutesBeforeTheyExpire()
    {
        SignIn();
        var chain = Chain("dev");
        var first = await chain.GetCredentialsAsync();

        Clock.Advance(TimeSpan.FromMinutes(54));
        Assert.That(await chain.GetCredentialsAsync(), Is.SameAs(first));
        await chain.PendingRefresh;
        Assert.That(_sso.Portal.Requests, Has.Count.EqualTo(1));

        Clock.Advance(TimeSpan.FromMinutes(2)); // 4 minutes left
        Assert.That(await chain.GetCredentialsAsync(), Is.SameAs(first), "still valid while the refresh runs");
        await chain.PendingRefresh;
        Assert.That(_sso.Portal.Requests, Has.Count.EqualTo(2));
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Is.EqualTo(_sso.Issued.Last().AccessKeyId).And.Not.EqualTo(first.AccessKeyId));
    }

    [Test]
    public async Task AThrottledPortalCallIsRetriedByThePipeline()
    {
        SignIn();
        int calls = 0;
        _sso.PortalOverride = _ => Interlocked.Increment(ref calls) == 1
            ? new Reply(429, """{"message":"Rate exceeded"}""") { Headers = [new("x-amzn-ErrorType", "TooManyRequestsException")] }
            : null;

        var credentials = await Chain("dev").GetCredentialsAsync();

        Assert.That(credentials.AccessKeyId, Is.EqualTo(_sso.Issued.Last().AccessKeyId));
        Assert.That(_sso.Portal.Requests, Has.Count.EqualTo(2), "throttled once, then answered");
    }

    [Test]
    public async Task AThousandConcurrentCallersCauseOnePortalCall()
    {
        SignIn();
        _sso.Delay = TimeSpan.FromMilliseconds(200);
        var chain = Chain("dev");
        var results = await CallConcurrently(chain);
        Assert.That(results.Distinct().Count(), Is.EqualTo(1));
        Assert.That(_sso.Portal.Requests, Has.Count.EqualTo(1));

        Clock.Advance(TimeSpan.FromHours(1)); // expired: every caller waits for the one new set
        results = await CallConcurrently(chain);
        Assert.That(results.Select(c => c.AccessKeyId).Distinct(), Is.EqualTo(new[] { _sso.Issued.Last().AccessKeyId }));
        Assert.That(_sso.Portal.Requests, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task ATokenAboutToExpireIsRefreshedAndWrittenBackInTheCliFormat()
    {
        Home.WriteConfig(SessionConfig);
        string path = CacheToken("corp", Start.AddMinutes(3), extra: """, "futureField": {"kept": [1, "two"]}""");
        using var before = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

        var credentials = await Chain("dev").GetCredentialsAsync();

        var call = _sso.OidcCalls.Single();
        Assert.That(call, Is.EquivalentTo(new Dictionary<string, string>
        {
            ["grantType"] = "refresh_token", ["clientId"] = FakeSso.ClientId, ["clientSecret"] = FakeSso.ClientSecret, ["refreshToken"] = CachedRefreshToken,
        }));
        Assert.That(_sso.Oidc.Requests.Single().Header("Content-Type"), Is.EqualTo("application/json"));
        Assert.That(_sso.Oidc.Requests.Single().Header("Authorization"), Is.Null, "CreateToken is not SigV4-signed");
        string newToken = _sso.PortalTokens.Single()!;
        Assert.That(newToken, Does.StartWith("aoaOIDCACCESS1"), "the portal got the refreshed token");
        Assert.That(credentials.AccessKeyId, Is.EqualTo(_sso.Issued.Single().AccessKeyId));

        using var written = JsonDocument.Parse(File.ReadAllBytes(path));
        var file = written.RootElement;
        Assert.That(file.GetProperty("accessToken").GetString(), Is.EqualTo(newToken));
        Assert.That(file.GetProperty("expiresAt").GetString(), Is.EqualTo("2030-01-01T13:00:00Z"), "now + expiresIn, as the CLI writes it");
        Assert.That(file.GetProperty("refreshToken").GetString(), Does.StartWith("AtzrOIDCREFRESH1"));
        Assert.That((file.GetProperty("clientId").GetString(), file.GetProperty("clientSecret").GetString(), file.GetProperty("registrationExpiresAt").GetString(),
                file.GetProperty("startUrl").GetString(), file.GetProperty("region").GetString()),
            Is.EqualTo((FakeSso.ClientId, FakeSso.ClientSecret, "2030-03-01T00:00:00Z", StartUrl, "us-east-1")));
        Assert.That(file.GetProperty("futureField").GetRawText(), Is.EqualTo("""{"kept": [1, "two"]}"""), "members it does not know are kept");
        Assert.That(Directory.GetFiles(Path.GetDirectoryName(path)!), Is.EqualTo(new[] { path }), "no temporary file is left behind");
        if (!OperatingSystem.IsWindows())
        {
            Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            // Replaced by a rename, not rewritten in place: a reader of the old file still reads the whole old file.
            Assert.That(new StreamReader(before).ReadToEnd(), Does.Contain(CachedToken));
        }
    }

    [Test]
    public async Task TheCacheFileIsReadAgainOnEachRefresh()
    {
        SignIn();
        var chain = Chain("dev");
        await chain.GetCredentialsAsync();

        // `aws sso login` ran again meanwhile: a new token.
        _sso.AcceptAccessToken("aoaAFTERRELOGIN0123456789");
        CacheToken("corp", Start.AddHours(9), accessToken: "aoaAFTERRELOGIN0123456789");
        Clock.Advance(TimeSpan.FromHours(1));
        await chain.GetCredentialsAsync();
        Assert.That(_sso.PortalTokens, Is.EqualTo(new[] { CachedToken, "aoaAFTERRELOGIN0123456789" }));
    }

    [Test]
    public async Task ARefreshedTokenIsUsedFromTheFileAfterwards()
    {
        Home.WriteConfig(SessionConfig);
        CacheToken("corp", Start.AddMinutes(3));
        var chain = Chain("dev");
        await chain.GetCredentialsAsync();
        string refreshed = _sso.PortalTokens.Single()!;

        Clock.Advance(TimeSpan.FromMinutes(57)); // the role credentials are due; the refreshed token has 3 minutes left
        await chain.GetCredentialsAsync();
        await chain.PendingRefresh;
        Assert.That(_sso.OidcCalls, Has.Count.EqualTo(2), "the refreshed token, read back from the file, is refreshed in turn");
        Assert.That(_sso.OidcCalls.Last()["refreshToken"], Does.StartWith("AtzrOIDCREFRESH1"), "with the refresh token written back");
        Assert.That(_sso.PortalTokens.Last(), Does.StartWith("aoaOIDCACCESS2").And.Not.EqualTo(refreshed));
    }

    [Test]
    public async Task AFailedRefreshKeepsUsingTheStillValidTokenAndTriesAgainAfter30Seconds()
    {
        Home.WriteConfig(SessionConfig);
        string path = CacheToken("corp", Start.AddMinutes(3));
        string original = File.ReadAllText(path);
        _sso.OidcOverride = _ => new Reply(500, """{"error":"server_error","error_description":"try later"}""");
        _sso.Lifetime = TimeSpan.FromMinutes(4); // role credentials this short are fetched again on each load
        var source = new ProfileSource(new AwsConfigContext(Options(profile: "dev")));

        // A refresh is one call of the pipeline: the 500 is retried, 3 attempts in all.
        Assert.That((await source.LoadAsync(CancellationToken.None)).Credentials, Is.Not.Null);
        Assert.That(_sso.OidcCalls, Has.Count.EqualTo(3));
        Assert.That(_sso.PortalTokens.Single(), Is.EqualTo(CachedToken));

        Clock.Advance(TimeSpan.FromSeconds(29));
        await source.LoadAsync(CancellationToken.None);
        Assert.That(_sso.OidcCalls, Has.Count.EqualTo(3), "at most one refresh every 30 seconds");
        Assert.That(_sso.PortalTokens, Has.Count.EqualTo(2));

        Clock.Advance(TimeSpan.FromSeconds(1));
        await source.LoadAsync(CancellationToken.None);
        Assert.That(_sso.OidcCalls, Has.Count.EqualTo(6));
        Assert.That(_sso.PortalTokens.Distinct(), Is.EqualTo(new[] { CachedToken }));
        Assert.That(File.ReadAllText(path), Is.EqualTo(original), "a failed refresh leaves the cache file alone");
    }

    [Test]
    public void AnExpiredTokenThatCannotBeRefreshedIsTheClearError()
    {
        Home.WriteConfig(SessionConfig);
        CacheToken("corp", Start.AddMinutes(-1));
        _sso.OidcOverride = _ => new Reply(400, """{"error":"invalid_grant","error_description":"Invalid refresh token provided"}""");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo(
            "Profile 'dev' signs in with IAM Identity Center (sso-session 'corp'), but its SSO token expired at 2030-01-01T11:59:00Z " +
            $"(refreshing it failed: SSO OIDC at {_sso.Oidc.Url}token refused to refresh the token with HTTP 400: invalid_grant: Invalid refresh token provided). " +
            "Run aws sso login --profile dev, then try again."));
        Assert.That(e.ProfileName, Is.EqualTo("dev"));
        Assert.That(_sso.Portal.Requests, Is.Empty, "an expired token is not sent");
        AssertNoSsoSecret(e.ToString());
    }

    [TestCase(false, "the cached token has no refresh token and client registration")]
    [TestCase(true, "its client registration expired at 2030-03-01T00:00:00Z")]
    public void AnExpiredTokenWithoutAUsableRegistrationSaysWhy(bool registrationExpired, string why)
    {
        Home.WriteConfig(SessionConfig);
        if (registrationExpired) Clock.Advance(TimeSpan.FromDays(90));
        CacheToken("corp", Clock.Now.AddMinutes(-1), refreshable: registrationExpired);
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain($"its SSO token expired at {Clock.Now.AddMinutes(-1).UtcDateTime:yyyy-MM-ddTHH:mm:ssZ} ({why}). Run aws sso login --profile dev"));
        Assert.That(_sso.OidcCalls, Is.Empty);
    }

    [Test]
    public void AnExpiredLegacyTokenIsNotRefreshedNorSent()
    {
        Home.WriteConfig(LegacyConfig);
        CacheToken(StartUrl, Start.AddSeconds(-1));
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("old").GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo(
            "Profile 'old' signs in with IAM Identity Center, but its SSO token expired at 2030-01-01T11:59:59Z (profiles without sso_session cannot refresh it). " +
            "Run aws sso login --profile old, then try again."));
        Assert.That(_sso.OidcCalls, Is.Empty);
        Assert.That(_sso.Portal.Requests, Is.Empty);
    }

    [TestCase("""{"accessToken": "aoaCACHEDACCESSTOKEN0123456789abcdef", "expiresAt": "2030-01""", "holds malformed JSON (line 1, byte ")]
    [TestCase("""{"accessToken": "aoaCACHEDACCESSTOKEN0123456789abcdef"}""", "holds no expiresAt, or one that is not an ISO 8601 time")]
    [TestCase("""{"accessToken": "aoaCACHEDACCESSTOKEN0123456789abcdef", "expiresAt": "tomorrow"}""", "holds no expiresAt, or one that is not an ISO 8601 time")]
    [TestCase("""{"expiresAt": "2030-01-01T20:00:00Z"}""", "holds no accessToken, or one that is empty or has white space")]
    [TestCase("""{"accessToken": "aoa CACHED", "expiresAt": "2030-01-01T20:00:00Z"}""", "holds no accessToken, or one that is empty or has white space")]
    [TestCase("""["aoaCACHEDACCESSTOKEN0123456789abcdef"]""", "holds something that is not a JSON object")]
    public void ACorruptCacheFileSaysToSignInAgainWithoutShowingIt(string content, string problem)
    {
        string path = SignIn();
        File.WriteAllText(path, content);
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"Profile 'dev' signs in with IAM Identity Center (sso-session 'corp'), but its SSO token cache {path} {problem}"));
        Assert.That(e.Message, Does.EndWith("Run aws sso login --profile dev, then try again."));
        AssertNoSsoSecret(e.ToString());
        Assert.That(_sso.Portal.Requests, Is.Empty);
    }

    [Test]
    public async Task TheOldCliTimeFormatIsRead()
    {
        Home.WriteConfig(LegacyConfig);
        string path = CacheToken(StartUrl, Start.AddHours(8), refreshable: false);
        File.WriteAllText(path, File.ReadAllText(path).Replace("T20:00:00Z", "T20:00:00UTC"));
        Assert.That(File.ReadAllText(path), Does.Contain("UTC"));
        await Chain("old").GetCredentialsAsync();
        Assert.That(_sso.PortalTokens.Single(), Is.EqualTo(CachedToken));
    }

    [TestCase("aoaSIGNEDOUTTOKEN", FakeSso.RoleName, "refused its SSO token (HTTP 401: Session token not found or invalid): the sign-in has expired or was ended")]
    [TestCase(CachedToken, "Admin", "refused role Admin in account 123456789012 (HTTP 403: No access): check sso_account_id and sso_role_name")]
    public void APortalRefusalNamesTheProfileAndSaysToSignIn(string token, string role, string expected)
    {
        Home.WriteConfig(SessionConfig.Replace($"sso_role_name = {FakeSso.RoleName}", $"sso_role_name = {role}"));
        CacheToken("corp", Start.AddHours(8), accessToken: token);
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"Profile 'dev' signs in with IAM Identity Center (sso-session 'corp'), but the SSO portal at {_sso.Portal.Url}federation/credentials"));
        Assert.That(e.Message, Does.Contain(expected));
        Assert.That(e.Message, Does.EndWith("Run aws sso login --profile dev, then try again."));
        Assert.That(e.ProfileName, Is.EqualTo("dev"));
        Assert.That(_sso.PortalTokens.Single(), Is.EqualTo(token));
        Assert.That(e.ToString(), Does.Not.Contain("aoaSIGNEDOUTTOKEN"));
        AssertNoSsoSecret(e.ToString());
    }

    [Test]
    public void APortalFailureIsNotALoginProblem()
    {
        SignIn();
        _sso.PortalOverride = _ => new Reply(429, """{"message":"Rate exceeded"}""");
        Env["AWS_ENDPOINT_URL_SSO"] = $"http://127.0.0.1:{_sso.Portal.Url.Port}/";
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo(
            $"Profile 'dev': the SSO portal at {_sso.Portal.Url}federation/credentials?account_id=123456789012&role_name=Developer answered HTTP 429: Rate exceeded."));
    }

    [Test]
    public void AnSsoEndpointWithUserInfoIsRefusedWithoutShowingIt()
    {
        SignIn();
        Env["AWS_ENDPOINT_URL_SSO"] = $"http://proxyuser:pa55w0rd@127.0.0.1:{_sso.Portal.Url.Port}/";
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith($"The environment variable AWS_ENDPOINT_URL_SSO is '{_sso.Portal.Url}' with user-info").And.Not.Contain("pa55w0rd"));
        Assert.That(_sso.Portal.Requests, Is.Empty, "nothing was sent");
    }

    [TestCase("""{"roleCredentials": {"accessKeyId": "ASIAX", "secretAccessKey": "leakedSecret", "sessionToken": "t", "expiration": -99999999999999999}}""",
        "gave an expiration '-99999999999999999' that is not a time in milliseconds since 1970")]
    [TestCase("""{"roleCredentials": {"accessKeyId": "ASIAX", "secretAccessKey": "leakedSecret", "sessionToken": "t", "expiration": "soon"}}""",
        "gave an expiration 'soon' that is not a time in milliseconds since 1970")]
    [TestCase("""{"roleCredentials": {"accessKeyId": "ASIAX", "sessionToken": "t", "expiration": 1893499200000}}""", "gave no SecretAccessKey")]
    [TestCase("""{"credentials": {"accessKeyId": "ASIAX", "secretAccessKey": "leakedSecret"}}""", "answered without roleCredentials")]
    [TestCase("""{"roleCredentials": {"accessKeyId": "ASIAX", "secretAccessKey": "leakedSecret" """, "answered malformed JSON")]
    public void AMalformedPortalAnswerIsTypedAndShowsNoSecret(string body, string expected)
    {
        SignIn();
        _sso.PortalOverride = _ => Reply.Json(body);
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith("Profile 'dev': the SSO portal at ").And.Contain(expected));
        Assert.That(e.Message, Does.Not.Contain("leakedSecret"));
    }

    [Test]
    public async Task AnSsoProfileCanBeTheSourceProfileOfARole()
    {
        await using var sts = new FakeSts(Clock);
        _sso.OnIssue = sts.Trust;
        Env["AWS_REGION"] = FakeSts.Region;
        Home.WriteConfig(SessionConfig.Replace("[profile dev]", "[profile sso-base]") + """

            [profile deploy]
            role_arn = arn:aws:iam::210987654321:role/deploy
            source_profile = sso-base
            """);
        CacheToken("corp", Start.AddHours(8));
        var chain = Chain("deploy", sts.Server.Url);
        var credentials = await chain.GetCredentialsAsync();
        Assert.That(sts.Calls.Single().SignedBy, Is.EqualTo(_sso.Issued.Single().AccessKeyId), "AssumeRole is signed with the SSO role's credentials");
        Assert.That(credentials.AccessKeyId, Does.StartWith("ASIASTS"));
        Assert.That(chain.Source, Is.EqualTo("profile 'deploy'"));

        // Assumed again when those expire; the SSO credentials, with 5 minutes left, are fetched again too.
        Clock.Advance(TimeSpan.FromMinutes(56));
        await chain.GetCredentialsAsync();
        await chain.PendingRefresh;
        Assert.That(sts.Calls, Has.Count.EqualTo(2));
        Assert.That(_sso.Portal.Requests, Has.Count.EqualTo(2));
        Assert.That(sts.Calls.Last().SignedBy, Is.EqualTo(_sso.Issued.Last().AccessKeyId));
    }

    [Test]
    public void ASourceSsoProfileWithoutATokenNamesItselfInTheLoginCommand()
    {
        Home.WriteConfig(SessionConfig.Replace("[profile dev]", "[profile sso-base]") + "\n[profile deploy]\nrole_arn = arn:aws:iam::210987654321:role/deploy\nsource_profile = sso-base\n");
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("deploy").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.EndWith("Run aws sso login --profile sso-base, then try again."));
        Assert.That(e.ProfileName, Is.EqualTo("sso-base"));
    }

    [Test]
    public async Task APortalRedirectIsNotFollowedSoTheTokenGoesNowhereElse()
    {
        await using var elsewhere = new FakeHttpServer(_ => Reply.Json("{}"));
        SignIn();
        _sso.PortalOverride = _ => new Reply(307, "") { Headers = [new("Location", elsewhere.Url + "federation/credentials")] };
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("answered HTTP 307"));
        Assert.That(elsewhere.Requests, Is.Empty);
    }

    [Test]
    public void TheEndpointsComeFromSsoRegionUnlessOverridden()
    {
        Env["AWS_ENDPOINT_URL_SSO"] = null;
        Env["AWS_ENDPOINT_URL_SSO_OIDC"] = null;
        Home.WriteConfig(SessionConfig.Replace("sso_region = us-east-1", "sso_region = eu-central-1"));
        var context = new AwsConfigContext(Options(profile: "dev"));
        var profile = SsoProfile.Read(context.Files.FindProfile("dev", null)!, context.Files)!;
        Assert.That(profile.PortalUri(context).ToString(),
            Is.EqualTo("https://portal.sso.eu-central-1.amazonaws.com/federation/credentials?account_id=123456789012&role_name=Developer"));
        Assert.That(profile.OidcUri(context).ToString(), Is.EqualTo("https://oidc.eu-central-1.amazonaws.com/token"));

        Env["AWS_ENDPOINT_URL_SSO"] = "http://127.0.0.1:9/portal/";
        Env["AWS_ENDPOINT_URL_SSO_OIDC"] = "http://127.0.0.1:9/oidc";
        Assert.That(profile.PortalUri(context).ToString(), Does.StartWith("http://127.0.0.1:9/portal/federation/credentials?"));
        Assert.That(profile.OidcUri(context).ToString(), Is.EqualTo("http://127.0.0.1:9/oidc/token"));
    }

    [Test]
    public void AProfileAndItsSessionMustAgree()
    {
        Home.WriteConfig(SessionConfig.Replace("region = eu-west-1", "region = eu-west-1\nsso_start_url = https://other.awsapps.com/start"));
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo(
            $"Profile 'dev' sets sso_start_url = https://other.awsapps.com/start ({Home.ConfigPath} line 6), but its sso-session 'corp' sets " +
            $"sso_start_url = {StartUrl} ({Home.ConfigPath} line 9); remove it from the profile, or make the two the same."));
        Assert.That((e.FilePath, e.LineNumber, e.ProfileName), Is.EqualTo((Home.ConfigPath, 6, "dev")));
    }

    [Test]
    public async Task AProfileMayRepeatItsSessionsValues()
    {
        Home.WriteConfig(SessionConfig.Replace("region = eu-west-1", $"region = eu-west-1\nsso_start_url = {StartUrl}\nsso_region = us-east-1"));
        CacheToken("corp", Start.AddHours(8));
        Assert.That((await Chain("dev").GetCredentialsAsync()).AccessKeyId, Does.StartWith("ASIASSO"));
    }

    [TestCase("[profile dev]\nsso_session = crop\nsso_account_id = 1\nsso_role_name = R\n[sso-session corp]\nsso_start_url = u\nsso_region = us-east-1\n",
        2, "Profile 'dev' has sso_session = crop (CONFIG line 2), but there is no [sso-session crop] section in CONFIG.")]
    [TestCase("[profile dev]\nsso_session = corp\nsso_account_id = 1\n[sso-session corp]\nsso_start_url = u\n",
        2, "Profile 'dev' uses IAM Identity Center (SSO, CONFIG line 2) but has no sso_role_name, sso_region (in [sso-session corp]).")]
    [TestCase("[profile dev]\nsso_role_name = R\nsso_account_id = 1\nsso_region = us-east-1\n",
        4, "Profile 'dev' uses IAM Identity Center (SSO, CONFIG line 4) but has no sso_start_url.")]
    [TestCase("[profile dev]\nsso_start_url = u\nsso_region = US_EAST\nsso_account_id = 1\nsso_role_name = R\n",
        3, "The sso_region 'US_EAST' (CONFIG line 3) of profile 'dev' is not a region name; write one such as us-east-1.")]
    public void IncompleteSsoSettingsAreNamed(string config, int line, string expected)
    {
        Home.WriteConfig(config);
        var e = Assert.ThrowsAsync<AwsConfigurationException>(async () => await Chain("dev").GetCredentialsAsync())!;
        Assert.That(e.Message, Does.StartWith(expected.Replace("CONFIG", Home.ConfigPath)));
        Assert.That((e.LineNumber, e.ProfileName), Is.EqualTo((line, "dev")));
    }

    [Test]
    public void NoTokenRefreshTokenOrClientSecretInToString()
    {
        string path = CacheToken("corp", Start.AddHours(8));
        var token = SsoToken.Parse(File.ReadAllBytes(path), out _)!;
        Assert.That(token.ToString(), Is.EqualTo("SsoToken { ExpiresAt = 2030-01-01T20:00:00Z, Refreshable = yes }"));
        var refreshed = token.Refreshed("aoaNEWTOKEN", Start.AddHours(9), "AtzrNEWREFRESH");
        Assert.That(refreshed.ToString(), Does.Not.Contain("aoaNEWTOKEN").And.Not.Contain("AtzrNEWREFRESH").And.Not.Contain(FakeSso.ClientSecret));
        AssertNoSsoSecret(token.ToString());

        Home.WriteConfig(SessionConfig);
        var context = new AwsConfigContext(Options(profile: "dev"));
        Assert.That(SsoProfile.Read(context.Files.FindProfile("dev", null)!, context.Files)!.ToString(),
            Is.EqualTo("SsoProfile { Name = dev, SessionName = corp, Account = 123456789012, Role = Developer }"));
    }
}
