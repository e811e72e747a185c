using System.Diagnostics;
using System.Net;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.EmulatorTestSupport;

namespace SigV4Lite.Tests;

/// <summary>Fault injection: each kind does what it says to the next invocation requests, in the order queued.</summary>
public class EmulatorFaultTests : SignedEmulatorFixture
{
    private RecordingFunction _function = null!;

    [SetUp]
    public void FreshFunction()
    {
        Emulator.Faults.Clear();
        _function = new RecordingFunction("{\"answer\":\"" + new string('z', 1000) + "\"}");
        Emulator.AddFunction("faulty", _function.Handle);
    }

    private async Task<HttpStatusCode> InvokeStatusAsync()
    {
        using var response = await Client.SendAsync(Invoke("faulty"));
        return response.StatusCode;
    }

    [Test]
    public async Task FailNextAnswersTheStatusAndErrorTypeWithoutRunningTheFunction()
    {
        Emulator.Faults.FailNext(2, 503, "ServiceUnavailableException");
        Assert.That(Emulator.Faults.Pending, Is.EqualTo(2));
        for (int i = 0; i < 2; i++)
        {
            using var response = await Client.SendAsync(Invoke("faulty"));
            await AssertAwsErrorAsync(response, HttpStatusCode.ServiceUnavailable, "ServiceUnavailableException");
        }
        Assert.That(_function.Calls, Is.Empty);
        Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.OK));
        Assert.That(_function.Calls, Has.Count.EqualTo(1));
        Assert.That(Emulator.Faults.Pending, Is.Zero);
    }

    [TestCase(500, "ServiceException")]
    [TestCase(502, "ResourceNotReadyException")]
    [TestCase(400, "InvalidParameterValueException")]
    public async Task FailNextUsesAnyErrorStatusAndType(int status, string errorType)
    {
        Emulator.Faults.FailNext(1, status, errorType);
        using var response = await Client.SendAsync(Invoke("faulty"));
        await AssertAwsErrorAsync(response, (HttpStatusCode)status, errorType);
    }

    [Test]
    public async Task ThrottleNextAnswers429WithReasonAndRetryAfter()
    {
        Emulator.Faults.ThrottleNext(1, "CallerRateLimitExceeded", TimeSpan.FromMilliseconds(2500));
        Emulator.Faults.ThrottleNext(1);
        using (var response = await Client.SendAsync(Invoke("faulty")))
        {
            Assert.That(await AssertAwsErrorAsync(response, HttpStatusCode.TooManyRequests, "TooManyRequestsException", reason: "CallerRateLimitExceeded"), Is.EqualTo("Rate Exceeded."));
            Assert.That(Header(response, "Retry-After"), Is.EqualTo("3"));
        }
        using (var response = await Client.SendAsync(Invoke("faulty")))
        {
            await AssertAwsErrorAsync(response, HttpStatusCode.TooManyRequests, "TooManyRequestsException", reason: "ConcurrentInvocationLimitExceeded");
            Assert.That(Header(response, "Retry-After"), Is.Null);
        }
        Assert.That(_function.Calls, Is.Empty);
    }

    [Test]
    public async Task DelayNextWaitsThenServes()
    {
        Emulator.Faults.DelayNext(1, TimeSpan.FromMilliseconds(300));
        var watch = Stopwatch.StartNew();
        Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.OK));
        Assert.That(watch.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(290)));
        Assert.That(_function.Calls, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task DelayNextGivesUpWhenTheCallerDoes()
    {
        Emulator.Faults.DelayNext(1, TimeSpan.FromSeconds(30));
        using var client = SignedClient(Emulator);
        client.Timeout = TimeSpan.FromMilliseconds(200);
        Assert.ThrowsAsync<TaskCanceledException>(() => client.SendAsync(Invoke("faulty")));
        await WaitUntilAsync(() => Emulator.Counters.InFlight == 0);
        Assert.That(_function.Calls, Is.Empty);
    }

    [Test]
    public async Task ResetNextAbortsTheConnectionWithoutRunningTheFunction()
    {
        Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.OK), "a pooled connection is in use");
        Emulator.Faults.ResetNext(1);
        Emulator.Counters.Reset();
        Assert.ThrowsAsync<HttpRequestException>(() => Client.SendAsync(Invoke("faulty")));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1), "the client did not retry behind our back");
        Assert.That(_function.Calls, Has.Count.EqualTo(1), "the function did not run for the reset request");
        Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task TruncateNextSendsHalfTheDeclaredBodyAfterRunningTheFunction()
    {
        Emulator.Faults.TruncateNext(1);
        using var response = await Client.SendAsync(Invoke("faulty"), HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentLength, Is.EqualTo(1000 + "{\"answer\":\"\"}".Length));
        Assert.That(async () => await response.Content.ReadAsByteArrayAsync(), Throws.InstanceOf<HttpRequestException>().Or.InstanceOf<IOException>());
        Assert.That(_function.Calls, Has.Count.EqualTo(1), "the function ran: only the answer was cut");
        Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task TruncateNextAbortsAnAnswerWithoutBody()
    {
        Emulator.Faults.TruncateNext(1);
        using var client = SignedClient(Emulator);
        Assert.ThrowsAsync<HttpRequestException>(() => client.SendAsync(Invoke("faulty", invocationType: "DryRun")));
    }

    [Test]
    public async Task AppliesQueuedFaultsInTheOrderTheyWereQueued()
    {
        Emulator.Faults.FailNext(1, 502, "ResourceNotReadyException");
        Emulator.Faults.ThrottleNext(2);
        Emulator.Faults.FailNext(1, 500, "ServiceException");
        var statuses = new List<int>();
        for (int i = 0; i < 5; i++) statuses.Add((int)await InvokeStatusAsync());
        Assert.That(statuses, Is.EqualTo(new[] { 502, 429, 429, 500, 200 }));
    }

    [Test]
    public async Task FailFractionFailsThatShareOfRequestsEvenly()
    {
        Emulator.Faults.FailFraction(0.25, 500, "ServiceException");
        var statuses = new List<int>();
        for (int i = 0; i < 8; i++) statuses.Add((int)await InvokeStatusAsync());
        Assert.That(statuses, Is.EqualTo(new[] { 200, 200, 200, 500, 200, 200, 200, 500 }));
        Assert.That(_function.Calls, Has.Count.EqualTo(6));

        Emulator.Faults.FailFraction(0, 500, "ServiceException");
        for (int i = 0; i < 4; i++) Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task QueuedFaultsComeBeforeTheFraction()
    {
        Emulator.Faults.FailFraction(1, 503, "ServiceUnavailableException");
        Emulator.Faults.ThrottleNext(1);
        Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.TooManyRequests));
        Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.ServiceUnavailable));
    }

    [Test]
    public async Task ClearRemovesEveryFault()
    {
        Emulator.Faults.FailNext(5, 500, "ServiceException");
        Emulator.Faults.FailFraction(1, 500, "ServiceException");
        Emulator.Faults.Clear();
        Assert.That(Emulator.Faults.Pending, Is.Zero);
        Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task RequestsRefusedForTheirSignatureTakeNoFault()
    {
        Emulator.Faults.FailNext(1, 503, "ServiceUnavailableException");
        using (var unsigned = await UnsignedClient(Emulator).SendAsync(Invoke("faulty")))
            Assert.That(unsigned.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(Emulator.Faults.Pending, Is.EqualTo(1));
        Assert.That(await InvokeStatusAsync(), Is.EqualTo(HttpStatusCode.ServiceUnavailable));
    }

    [Test]
    public void RefusesMeaninglessFaults()
    {
        var faults = Emulator.Faults;
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => faults.FailNext(0, 500, "ServiceException"))!.Message, Does.Contain("1 or more"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => faults.FailNext(1, 200, "ServiceException"))!.Message, Does.Contain("400 to 599"));
        Assert.That(Assert.Throws<ArgumentException>(() => faults.FailNext(1, 500, ""))!.Message, Does.Contain("ServiceException"));
        Assert.That(Assert.Throws<ArgumentException>(() => faults.FailNext(1, 500, "Bad\r\nType"))!.Message, Does.Contain("plain name"));
        Assert.That(Assert.Throws<ArgumentException>(() => faults.ThrottleNext(1, " "))!.Message, Does.Contain("reason"));
        Assert.Throws<ArgumentOutOfRangeException>(() => faults.ThrottleNext(1, retryAfter: TimeSpan.FromSeconds(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => faults.DelayNext(1, TimeSpan.FromSeconds(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => faults.DelayNext(1, Timeout.InfiniteTimeSpan));
        Assert.Throws<ArgumentOutOfRangeException>(() => faults.ResetNext(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => faults.TruncateNext(-1));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => faults.FailFraction(1.5, 500, "ServiceException"))!.Message, Does.Contain("0 (none) to 1 (all)"));
        Assert.Throws<ArgumentOutOfRangeException>(() => faults.FailFraction(double.NaN, 500, "ServiceException"));
        Assert.That(faults.Pending, Is.Zero, "a refused fault is not queued");
    }

    internal static async Task WaitUntilAsync(Func<bool> condition)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > Patience) Assert.Fail("the condition did not become true in time");
            await Task.Delay(10);
        }
    }
}
