using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>
/// Refresh of temporary credentials: one refresh for many callers, valid credentials kept through a failed refresh,
/// expired ones never handed out. Sources: a container endpoint and a fake STS, both counting their calls.
/// </summary>
public class CredentialsRefreshTests : CredentialsTestBase
{
    /// <summary>A container endpoint handing out numbered credentials that expire an hour after the test clock's now.</summary>
    private sealed class Issuer(SteppingClock clock)
    {
        private int _issued;
        public TimeSpan Delay { get; set; }
        public volatile bool Fail;

        public async Task<Reply> Handle(ReceivedRequest request)
        {
            if (Delay > TimeSpan.Zero) await Task.Delay(Delay);
            if (Fail) return new Reply(500, """{"code":"InternalError","message":"try again"}""");
            int n = Interlocked.Increment(ref _issued);
            return Reply.Json(CredentialsJson($"ASIAISSUED{n:D10}", $"secret{n}", $"token{n}", clock.Now.AddHours(1)));
        }
    }

    private (AwsCredentialsChain Chain, Issuer Issuer, FakeHttpServer Server) Container()
    {
        var issuer = new Issuer(Clock);
        var server = new FakeHttpServer(issuer.Handle);
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.Url + "creds";
        return (AwsCredentialsChain.CreateDefault(Options()), issuer, server);
    }

    [Test]
    public async Task AThousandCallsOnCredentialsAboutToExpireCauseOneRefreshWhileTheyKeepTheValidOnes()
    {
        var (chain, issuer, server) = Container();
        await using var _ = server;
        var first = await chain.GetCredentialsAsync();
        Assert.That(first.AccessKeyId, Is.EqualTo("ASIAISSUED0000000001"));

        issuer.Delay = TimeSpan.FromMilliseconds(300);
        Clock.Advance(TimeSpan.FromMinutes(56)); // 4 minutes left: inside the refresh window, still valid
        var results = await CallConcurrently(chain);
        Assert.That(results.Where(c => c.AccessKeyId != first.AccessKeyId).Select(c => c.AccessKeyId).Distinct(), Is.SubsetOf(new[] { "ASIAISSUED0000000002" }));
        Assert.That(results.Count(c => ReferenceEquals(c, first)), Is.GreaterThan(0), "callers are not held up by the refresh");
        Assert.That(results.All(c => c.Expiration > Clock.Now), "no expired credentials");

        await chain.PendingRefresh;
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Is.EqualTo("ASIAISSUED0000000002"));
        Assert.That(server.Requests, Has.Count.EqualTo(2), "one first load and exactly one refresh");
    }

    [Test]
    public async Task AThousandCallsOnExpiredCredentialsAllWaitForOneRefresh()
    {
        var (chain, issuer, server) = Container();
        await using var _ = server;
        await chain.GetCredentialsAsync();

        issuer.Delay = TimeSpan.FromMilliseconds(200);
        Clock.Advance(TimeSpan.FromHours(1));
        var results = await CallConcurrently(chain);
        Assert.That(results.Select(c => c.AccessKeyId).Distinct(), Is.EqualTo(new[] { "ASIAISSUED0000000002" }));
        Assert.That(server.Requests, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task TheFirstLoadIsSharedByConcurrentCallersToo()
    {
        var (chain, issuer, server) = Container();
        await using var _ = server;
        issuer.Delay = TimeSpan.FromMilliseconds(200);
        var results = await CallConcurrently(chain);
        Assert.That(results.Distinct().Count(), Is.EqualTo(1));
        Assert.That(server.Requests, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task AFailedRefreshKeepsTheValidCredentialsAndRetriesLater()
    {
        var (chain, issuer, server) = Container();
        await using var _ = server;
        var first = await chain.GetCredentialsAsync();

        issuer.Fail = true;
        Clock.Advance(TimeSpan.FromMinutes(56));
        Assert.That(await chain.GetCredentialsAsync(), Is.SameAs(first));
        await chain.PendingRefresh;
        Assert.That(server.Requests, Has.Count.EqualTo(2));
        Assert.That(await chain.GetCredentialsAsync(), Is.SameAs(first), "the failure is not the caller's problem while the credentials are valid");
        await chain.PendingRefresh;
        Assert.That(server.Requests, Has.Count.EqualTo(2), "no new attempt before the retry delay");

        Clock.Advance(AwsCredentialsChain.RetryDelay);
        Assert.That(await chain.GetCredentialsAsync(), Is.SameAs(first));
        await chain.PendingRefresh;
        Assert.That(server.Requests, Has.Count.EqualTo(3));

        issuer.Fail = false;
        Clock.Advance(AwsCredentialsChain.RetryDelay);
        Assert.That(await chain.GetCredentialsAsync(), Is.SameAs(first), "still the valid set while the refresh runs");
        await chain.PendingRefresh;
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Is.EqualTo("ASIAISSUED0000000002"));
        Assert.That(server.Requests, Has.Count.EqualTo(4));
    }

    [Test]
    public async Task ExpiredCredentialsAreNeverReturnedEvenWhenTheRefreshFails()
    {
        var (chain, issuer, server) = Container();
        await using var _ = server;
        var first = await chain.GetCredentialsAsync();

        issuer.Fail = true;
        Clock.Advance(TimeSpan.FromHours(1) - TimeSpan.FromSeconds(10)); // valid for 10 more seconds: too little to sign with
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await chain.GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("answered HTTP 500 InternalServerError: InternalError: try again"));
        AssertNoSecret(e.Message, first);

        Clock.Advance(TimeSpan.FromSeconds(20));
        Assert.ThrowsAsync<AwsCredentialsException>(async () => await chain.GetCredentialsAsync());
        Assert.That(server.Requests, Has.Count.EqualTo(3), "each caller that finds no usable credentials tries again");

        issuer.Fail = false;
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Is.EqualTo("ASIAISSUED0000000002"));
    }

    [Test]
    public async Task CredentialsThatArriveAlreadyExpiredAreRefused()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json(CredentialsJson("ASIAOLD", "oldSecret", "oldToken", Start.AddMinutes(-1))));
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.Url + "creds";
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain("(access key id ASIAOLD) expired at 2030-01-01T11:59:00Z").And.Not.Contain("oldSecret"));
    }

    // The smallest time there is: the expiry margin subtracted from it would be out of range.
    [TestCase("0001-01-01T00:00:00Z", "expired at 0001-01-01T00:00:00Z")]
    [TestCase("0001-01-01T00:00:14Z", "expired at 0001-01-01T00:00:14Z")]
    public async Task CredentialsThatExpiredAtTheStartOfTimeAreRefusedWithTheTypedError(string expiration, string expected)
    {
        await using var server = new FakeHttpServer(_ => Reply.Json(
            $$"""{"AccessKeyId": "ASIAOLD", "SecretAccessKey": "oldSecret", "Token": "oldToken", "Expiration": "{{expiration}}"}"""));
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.Url + "creds";
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Does.Contain($"(access key id ASIAOLD) {expected}, before they could be used"));
    }

    [Test]
    public async Task CredentialsThatExpireAtTheEndOfTimeAreKept()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json(
            """{"AccessKeyId": "ASIAFOREVER", "SecretAccessKey": "s", "Token": "t", "Expiration": "9999-12-31T23:59:59Z"}"""));
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.Url + "creds";
        var chain = AwsCredentialsChain.CreateDefault(Options());
        var first = await chain.GetCredentialsAsync();
        Clock.Advance(TimeSpan.FromDays(365));
        Assert.That(await chain.GetCredentialsAsync(), Is.SameAs(first));
        Assert.That(server.Requests, Has.Count.EqualTo(1));
    }

    // The chain promises never to hand out credentials in their last 15 seconds: a set that arrives with less left is refused.
    [Test]
    public async Task CredentialsThatArriveInTheirLast15SecondsAreRefused()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json(CredentialsJson("ASIASHORT", "shortSecret", "shortToken", Start.AddSeconds(10))));
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.Url + "creds";
        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync())!;
        Assert.That(e.Message, Is.EqualTo(
            "The credentials from container credentials (access key id ASIASHORT) expire at 2030-01-01T12:00:10Z, less than 15 seconds " +
            "from now (2030-01-01T12:00:00Z): too late to be used; check this machine's clock."));
        Assert.That(e.Message, Does.Not.Contain("shortSecret").And.Not.Contain("shortToken"));
    }

    [Test]
    public async Task CredentialsWithJustOver15SecondsLeftAreUsed()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json(CredentialsJson("ASIASHORT", "shortSecret", "shortToken", Start.AddSeconds(16))));
        Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.Url + "creds";
        var credentials = await AwsCredentialsChain.CreateDefault(Options()).GetCredentialsAsync();
        Assert.That(credentials.AccessKeyId, Is.EqualTo("ASIASHORT"));
    }

    [Test]
    public async Task ACallerThatGivesUpDoesNotCancelTheRefreshForOthers()
    {
        var (chain, issuer, server) = Container();
        await using var _ = server;
        issuer.Delay = TimeSpan.FromMilliseconds(300);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        var patient = chain.GetCredentialsAsync().AsTask();
        Assert.ThrowsAsync<TaskCanceledException>(async () => await chain.GetCredentialsAsync(cancel.Token));
        Assert.That((await patient).AccessKeyId, Is.EqualTo("ASIAISSUED0000000001"));
        Assert.That(server.Requests, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task AThousandCallsOnAssumedRoleCredentialsAboutToExpireCauseOneAssumeRole()
    {
        await using var sts = new FakeSts(Clock);
        sts.Trust(new AwsCredentials(LongTermId, LongTermSecret));
        Env["AWS_REGION"] = FakeSts.Region;
        Home.WriteConfig($"""
            [profile base]
            aws_access_key_id = {LongTermId}
            aws_secret_access_key = {LongTermSecret}
            [profile dev]
            role_arn = arn:aws:iam::123456789012:role/dev
            source_profile = base
            """);
        var chain = AwsCredentialsChain.CreateDefault(Options(sts.Server.Url, profile: "dev"));
        var first = await chain.GetCredentialsAsync();

        Clock.Advance(TimeSpan.FromMinutes(57));
        var results = await CallConcurrently(chain);
        Assert.That(results.All(c => c.Expiration > Clock.Now));
        await chain.PendingRefresh;
        Assert.That((await chain.GetCredentialsAsync()).AccessKeyId, Is.Not.EqualTo(first.AccessKeyId));
        Assert.That(sts.Calls, Has.Count.EqualTo(2), "one AssumeRole to load, one to refresh");
        Assert.That(sts.Calls.All(c => c.SignedBy == LongTermId));
    }
}
