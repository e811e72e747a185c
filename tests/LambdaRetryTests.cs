using System.Net;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.LambdaTestSupport;

namespace SigV4Lite.Tests;

/// <summary>Retries as the SDKs' standard mode makes them, against the emulator's injected faults. Delays are recorded, never slept.</summary>
[TestFixture]
public sealed class LambdaRetryTests : EmulatorFixture
{
    [Test]
    public async Task Throttling_ThenSuccess_IsRetriedOnce()
    {
        Emulator.Faults.ThrottleNext(1);
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        var response = await client.InvokeAsync(new LambdaRequest("echo", "{}"));

        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(2));
        Assert.That(delays.Delays, Has.Count.EqualTo(1));
        Assert.That(delays.Delays[0], Is.GreaterThanOrEqualTo(TimeSpan.Zero).And.LessThan(TimeSpan.FromSeconds(1)));
        Assert.That(client.Pipeline.Retry.Tokens, Is.EqualTo(500), "the success returned the retry's 5 tokens");
    }

    [Test]
    public void ServerError_ThreeTimes_FailsAfterExactlyThreeAttempts()
    {
        Emulator.Faults.FailNext(3, 500, "ServiceException");
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        Assert.That(e!.ErrorCode, Is.EqualTo("ServiceException"));
        Assert.That(e.Attempts, Is.EqualTo(3));
        Assert.That(e.Message, Does.Contain("after 3 attempts"));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(3));
        Assert.That(delays.Delays, Has.Count.EqualTo(2));
        Assert.That(delays.Delays[0], Is.LessThan(TimeSpan.FromSeconds(1)), "first backoff: random below 1 s");
        Assert.That(delays.Delays[1], Is.LessThan(TimeSpan.FromSeconds(2)), "second backoff: random below 2 s");
        Assert.That(client.Pipeline.Retry.Tokens, Is.EqualTo(490));
    }

    [TestCase(502, "ResourceNotReadyException")]
    [TestCase(503, "ServiceUnavailableException")]
    [TestCase(504, "GatewayTimeoutException")]
    public async Task TransientServerErrors_ThenSuccess_AreRetried(int status, string errorType)
    {
        Emulator.Faults.FailNext(2, status, errorType);
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        var response = await client.InvokeAsync(new LambdaRequest("echo", "{}"));

        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(3));
        Assert.That(delays.Delays, Has.Count.EqualTo(2));
    }

    [Test]
    public void FunctionError_IsNotRetried()
    {
        Emulator.AddFunction("crash", (_, _) => throw new InvalidOperationException("boom"));
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        Assert.ThrowsAsync<LambdaFunctionException>(() => client.InvokeAsync(new LambdaRequest("crash", "{}")));

        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1));
        Assert.That(delays.Delays, Is.Empty);
    }

    [Test]
    public void BadRequest_IsNotRetried()
    {
        Emulator.Faults.FailNext(1, 400, "InvalidParameterValueException");
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        Assert.That(e!.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1));
        Assert.That(delays.Delays, Is.Empty);
    }

    [Test]
    public void RetriesOff_OneAttemptOnly()
    {
        Emulator.Faults.ThrottleNext(2);
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays, maxAttempts: 1);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        Assert.That(e!.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1));
        Assert.That(delays.Delays, Is.Empty);
    }

    [Test]
    public void BaseDelay_IsConfigurable_AndBackoffIsCapped()
    {
        Emulator.Faults.FailNext(6, 503, "ServiceUnavailableException");
        var delays = new RecordedDelays();
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = Emulator.Endpoint, Region = "us-east-1", Credentials = EmulatorTestSupport.ExampleCredentials,
            MaxAttempts = 6, RetryBaseDelay = TimeSpan.FromSeconds(10), Clock = delays,
        });

        Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        Assert.That(delays.Delays, Has.Count.EqualTo(5));
        Assert.That(delays.Delays[0], Is.LessThan(TimeSpan.FromSeconds(10)));
        Assert.That(delays.Delays, Has.All.LessThan(TimeSpan.FromSeconds(20)), "capped at 20 s");
        Assert.That(delays.Delays.Distinct().Count(), Is.GreaterThan(1), "full jitter: random delays");
    }

    // A bucket of 500 tokens, 5 per retry: 50 failing calls of 3 attempts empty it, and the 51st makes one attempt.
    [Test]
    public async Task RetryQuota_Empties_ThenCallsAreNotRetried_UntilSuccessesRefillIt()
    {
        Emulator.Faults.FailFraction(1.0, 500, "ServiceException");
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        for (int i = 0; i < 51; i++)
            Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        Assert.That(Emulator.Counters.Requests, Is.EqualTo(50 * 3 + 1));
        Assert.That(client.Pipeline.Retry.Tokens, Is.Zero);

        Emulator.Faults.Clear();
        await client.InvokeAsync(new LambdaRequest("echo", "{}"));
        Assert.That(client.Pipeline.Retry.Tokens, Is.EqualTo(1), "a first-try success returns one token");
    }

    [Test]
    public async Task ConnectionReset_IsRetried()
    {
        Emulator.Faults.ResetNext(1);
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        var response = await client.InvokeAsync(new LambdaRequest("echo", """{"a":1}"""));

        Assert.That(response.GetPayloadString(), Is.EqualTo("""{"function":"echo","payload":{"a":1}}"""));
        Assert.That(delays.Delays, Has.Count.EqualTo(1));
    }

    [Test]
    public void ConnectionReset_EveryTime_IsAnAwsConnectionExceptionAfterThreeAttempts()
    {
        Emulator.Faults.ResetNext(3);
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        var e = Assert.ThrowsAsync<AwsConnectionException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        Assert.That(e!.InnerException, Is.InstanceOf<HttpRequestException>(), "the connection failure is the inner exception");
        Assert.That(e.Attempts, Is.EqualTo(3));
        Assert.That(delays.Delays, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task TruncatedAnswer_IsRetried()
    {
        Emulator.Faults.TruncateNext(1);
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays);

        var response = await client.InvokeAsync(new LambdaRequest("echo", """{"long":"enough to be cut in half"}"""));

        Assert.That(response.GetPayloadString(), Is.EqualTo("""{"function":"echo","payload":{"long":"enough to be cut in half"}}"""));
        Assert.That(delays.Delays, Has.Count.EqualTo(1));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(2));
    }

    [Test]
    public async Task Timeout_IsRetried_AndCostsTenTokens()
    {
        Emulator.Faults.DelayNext(1, TimeSpan.FromSeconds(20));
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays, timeout: TimeSpan.FromMilliseconds(500));

        var response = await client.InvokeAsync(new LambdaRequest("echo", "{}"));

        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(delays.Delays, Has.Count.EqualTo(1));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(2));
        Assert.That(client.Pipeline.Retry.Tokens, Is.EqualTo(500), "the success returned the 10 tokens");
    }

    // The emulator's clock is an hour off: the first signature is refused as expired (or not yet current), the
    // client learns the offset from the Date header, signs again and succeeds; later calls are right first time.
    [TestCase(60)]
    [TestCase(-60)]
    public async Task ClockSkew_IsCorrectedOnce_AndRemembered(int minutes)
    {
        await using var skewed = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { Clock = new OffsetClock(TimeSpan.FromMinutes(minutes)) });
        skewed.AddFunction("echo", LambdaEmulator.Echo);
        var delays = new RecordedDelays();
        using var client = NewClient(skewed, delays);

        var first = await client.InvokeAsync(new LambdaRequest("echo", "{}"));
        var second = await client.InvokeAsync(new LambdaRequest("echo", "{}"));

        Assert.That(first.StatusCode, Is.EqualTo(200));
        Assert.That(second.StatusCode, Is.EqualTo(200));
        Assert.That(skewed.Counters.SignatureFailures, Is.EqualTo(1));
        Assert.That(skewed.Counters.Requests, Is.EqualTo(3));
        Assert.That(delays.Delays, Is.Empty, "a clock-skew retry is immediate");
        Assert.That(client.Pipeline.Retry.ClockOffset, Is.EqualTo(TimeSpan.FromMinutes(minutes)).Within(TimeSpan.FromSeconds(5)));
    }

    // A fan-out on a skewed machine: the first wave is all signed with the uncorrected clock, and all of it is refused.
    // Each call compares the server's clock with the offset it signed with, so every one of them is corrected and
    // retried, not only the first to learn the offset.
    [Test]
    public async Task ClockSkew_ConcurrentCallsSignedBeforeTheCorrection_AreAllRetried()
    {
        var lambda = new SkewedLambda(wave: 4, skew: TimeSpan.FromMinutes(10));
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = new Uri("https://lambda.us-east-1.amazonaws.com"), Region = "us-east-1",
            Credentials = EmulatorTestSupport.ExampleCredentials, HttpHandler = lambda, Clock = new RecordedDelays(),
        });
        var requests = Enumerable.Range(0, 4).Select(i => new LambdaRequest($"f{i}", "{}"));

        var outcomes = await client.InvokeAllSettledAsync(requests, new AwsFanOutOptions { MaxConcurrency = 4 });

        var failures = outcomes.Where(o => !o.Succeeded).Select(o => o.Error!.Message).ToArray();
        Assert.That(failures, Is.Empty, "every call signed before the correction is retried with the corrected clock");
        Assert.That(lambda.Requests, Is.EqualTo(8), "each call: one refused attempt, one accepted");
        Assert.That(lambda.Refused, Is.EqualTo(4));
        Assert.That(client.Pipeline.Retry.ClockOffset, Is.EqualTo(TimeSpan.FromMinutes(10)).Within(TimeSpan.FromSeconds(5)));
    }

    // A Lambda stand-in whose clock runs ahead: a request signed more than 5 minutes off gets AWS's 403 "Signature
    // expired" with a Date header. Answers are held until `wave` requests have arrived, so that all of a fan-out's
    // first wave is signed with the uncorrected clock, as on a real skewed machine at concurrency > 1.
    private sealed class SkewedLambda(int wave, TimeSpan skew) : HttpMessageHandler
    {
        private readonly TaskCompletionSource _waveArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _requests, _refused;

        public int Requests => Volatile.Read(ref _requests);

        public int Refused => Volatile.Read(ref _refused);

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _requests) >= wave) _waveArrived.TrySetResult();
            await _waveArrived.Task.WaitAsync(Patience, cancellationToken);
            var serverNow = DateTimeOffset.UtcNow + skew;
            var signedAt = DateTimeOffset.ParseExact(request.Headers.GetValues("X-Amz-Date").Single(), "yyyyMMdd'T'HHmmss'Z'",
                System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal);
            HttpResponseMessage response;
            if ((serverNow - signedAt).Duration() > TimeSpan.FromMinutes(5))
            {
                Interlocked.Increment(ref _refused);
                response = StubHandler.Json(HttpStatusCode.Forbidden,
                    """{"message":"Signature expired: 20300101T000000Z is now earlier than 20300101T000500Z (20300101T001000Z - 5 min.)"}""",
                    ("x-amzn-ErrorType", "InvalidSignatureException"));
            }
            else response = StubHandler.Json(HttpStatusCode.OK, "{}");
            response.Headers.Date = serverNow;
            response.RequestMessage = request;
            return response;
        }
    }

    [Test]
    public void SignatureError_WithoutClockSkew_IsNotRetried()
    {
        var delays = new RecordedDelays();
        using var client = NewClient(Emulator, delays, credentials: new AwsCredentials("AKIDEXAMPLE", "not-the-secret-not-the-secret-not-the-00"));

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));

        Assert.That(e!.ErrorCode, Is.EqualTo("InvalidSignatureException"));
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(1));
        Assert.That(client.Pipeline.Retry.ClockOffset, Is.EqualTo(TimeSpan.Zero));
    }

    // Each attempt is signed afresh: with a clock that moves on at each reading, each attempt carries its own, later,
    // X-Amz-Date. (The pipeline reads the clock more than once per attempt, so the dates are not one step apart.)
    [Test]
    public async Task EachAttempt_IsSignedAfresh()
    {
        int calls = 0;
        var stub = new StubHandler(_ => ++calls < 3
            ? StubHandler.Json(HttpStatusCode.TooManyRequests, """{"message":"Rate Exceeded.","Reason":"ConcurrentInvocationLimitExceeded"}""", ("x-amzn-ErrorType", "TooManyRequestsException"))
            : StubHandler.Json(HttpStatusCode.OK, "{}"));
        var clock = new SteppingClock(new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero), TimeSpan.FromSeconds(7));
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = new Uri("https://lambda.us-east-1.amazonaws.com"), Region = "us-east-1",
            Credentials = EmulatorTestSupport.ExampleCredentials, HttpHandler = stub, Clock = new RecordedDelays(clock),
        });

        await client.InvokeAsync(new LambdaRequest("f", "{}"));

        var dates = stub.Headers.Select(h => h["X-Amz-Date"]).ToList();
        var signatures = stub.Headers.Select(h => h["Authorization"]).ToList();
        Assert.That(dates, Has.Count.EqualTo(3));
        Assert.That(dates[0], Is.EqualTo("20250102T030405Z"), "the first attempt is signed at the first reading of the clock");
        Assert.That(dates, Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal).And.Unique, "each attempt is signed at a later time");
        Assert.That(signatures.Distinct().Count(), Is.EqualTo(3));
    }

    // Each reading of the time moves it on by a step.
    private sealed class SteppingClock(DateTimeOffset start, TimeSpan step) : TimeProvider
    {
        private long _reads;

        public override DateTimeOffset GetUtcNow() => start + step * (Interlocked.Increment(ref _reads) - 1);
    }
}
