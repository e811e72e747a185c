using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SigV4Lite.Tests;

// The send pipeline against loopback fakes of four real protocols, each verifying every signature.
public class AwsClientProtocolTests
{
    private static AwsRequest GetItem(string key) =>
        AwsRequest.AwsJson("DynamoDB_20120810.GetItem", "{\"TableName\":\"t\",\"Key\":{\"id\":{\"S\":\"" + key + "\"}}}");

    [Test]
    public async Task DynamoDB_ThrottlingIsRetriedThenSucceeds()
    {
        await using var dynamo = new FakeAwsService("dynamodb", (request, call) =>
        {
            Assert.That(request.Header("X-Amz-Target"), Is.EqualTo("DynamoDB_20120810.GetItem"));
            Assert.That(request.Header("Content-Type"), Is.EqualTo("application/x-amz-json-1.0"));
            return call == 1
                ? FakeAwsService.JsonError(400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "Rate of requests exceeds the allowed throughput.")
                : Reply.Json("""{"Item":{"id":{"S":"a"}}}""");
        });
        using var client = dynamo.Client(AwsService.DynamoDB);

        var response = await client.SendAsync(GetItem("a"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.GetBodyString(), Is.EqualTo("""{"Item":{"id":{"S":"a"}}}"""));
        Assert.That(dynamo.Calls, Is.EqualTo(2));
        Assert.That(dynamo.SignatureFailures, Is.Empty);
        Assert.That(client.Retry.Tokens, Is.EqualTo(RetryPolicy.QuotaCapacity), "the success gave back the retry's tokens");
    }

    [Test]
    public async Task DynamoDB_NonRetryableErrorIsThrownAtOnceWithEverythingAwsSaid()
    {
        await using var dynamo = new FakeAwsService("dynamodb", (_, _) =>
            FakeAwsService.JsonError(400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "Requested resource not found"));
        using var client = dynamo.Client(AwsService.DynamoDB);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(GetItem("a")))!;

        Assert.That(e.ErrorCode, Is.EqualTo("ResourceNotFoundException"));
        Assert.That(e.ErrorMessage, Is.EqualTo("Requested resource not found"));
        Assert.That(e.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(e.RequestId, Does.StartWith("REQ-"));
        Assert.That(e.ServiceName, Is.EqualTo("DynamoDB"));
        Assert.That(e.OperationName, Is.EqualTo("GetItem"));
        Assert.That(e.ErrorType, Is.EqualTo(AwsErrorType.Sender));
        Assert.That(e.Attempts, Is.EqualTo(1));
        Assert.That(e.IsThrottling, Is.False);
        Assert.That(e.Message, Does.Contain("DynamoDB GetItem answered 400 ResourceNotFoundException: Requested resource not found"));
        Assert.That(dynamo.Calls, Is.EqualTo(1), "a client error is not retried");
    }

    [Test]
    public async Task Sqs_QueryCompatibleErrorCodeIsTheLegacyOne()
    {
        await using var sqs = new FakeAwsService("sqs", (request, _) =>
        {
            Assert.That(request.Header("X-Amz-Target"), Is.EqualTo("AmazonSQS.SendMessage"));
            return FakeAwsService.JsonError(400, "com.amazonaws.sqs#QueueDoesNotExist", "The specified queue does not exist.",
                new KeyValuePair<string, string>("x-amzn-query-error", "AWS.SimpleQueueService.NonExistentQueue;Sender"));
        });
        using var client = sqs.Client(AwsService.Sqs);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(
            AwsRequest.AwsJson("AmazonSQS.SendMessage", """{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/1/q","MessageBody":"x"}""")))!;

        Assert.That(e.ErrorCode, Is.EqualTo("AWS.SimpleQueueService.NonExistentQueue"));
        Assert.That(e.ErrorType, Is.EqualTo(AwsErrorType.Sender));
        Assert.That(e.ErrorMessage, Is.EqualTo("The specified queue does not exist."));
    }

    [Test]
    public async Task Sqs_ThrottledThroughQueryErrorIsRetried()
    {
        await using var sqs = new FakeAwsService("sqs", (_, call) => call == 1
            ? FakeAwsService.JsonError(400, "com.amazonaws.sqs#RequestThrottled", "Rate exceeded",
                new KeyValuePair<string, string>("x-amzn-query-error", "RequestThrottled;Sender"))
            : Reply.Json("""{"MessageId":"m-1","MD5OfMessageBody":"9dd4e461268c8034f5c8564e155c67a6"}"""));
        using var client = sqs.Client(AwsService.Sqs);

        var response = await client.SendAsync(AwsRequest.AwsJson("AmazonSQS.SendMessage", """{"QueueUrl":"q","MessageBody":"x"}"""));

        Assert.That(response.GetBodyString(), Does.Contain("m-1"));
        Assert.That(sqs.Calls, Is.EqualTo(2));
    }

    [Test]
    public async Task Sts_QuerySuccessAndXmlError()
    {
        await using var sts = new FakeAwsService("sts", (request, _) =>
        {
            var form = request.Form();
            Assert.That(request.Header("Content-Type"), Is.EqualTo("application/x-www-form-urlencoded; charset=utf-8"));
            return form["Action"] == "GetCallerIdentity"
                ? new Reply(200, "<GetCallerIdentityResponse><GetCallerIdentityResult><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>", "text/xml")
                : FakeAwsService.QueryError(403, "InvalidClientTokenId", "The security token included in the request is invalid.");
        });
        using var client = sts.Client(AwsService.Sts);

        var ok = await client.SendAsync(AwsRequest.AwsQuery("GetCallerIdentity", "2011-06-15"));
        Assert.That(ok.GetBodyString(), Does.Contain("<Account>123456789012</Account>"));

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(AwsRequest.AwsQuery("GetSessionToken", "2011-06-15", [new("DurationSeconds", "900")])))!;
        Assert.That(e.ErrorCode, Is.EqualTo("InvalidClientTokenId"));
        Assert.That(e.ErrorMessage, Is.EqualTo("The security token included in the request is invalid."));
        Assert.That(e.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(e.ErrorType, Is.EqualTo(AwsErrorType.Sender));
        Assert.That(e.RequestId, Is.EqualTo("01234567-89ab-cdef-0123-456789abcdef"), "taken from the XML body when no header carries it");
        Assert.That(e.OperationName, Is.EqualTo("GetSessionToken"));
    }

    [Test]
    public async Task Ec2_ErrorsElementIsRead()
    {
        await using var ec2 = new FakeAwsService("ec2", (_, _) => new Reply(400,
            "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-1' does not exist</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>",
            "text/xml"));
        using var client = ec2.Client(new AwsService("EC2", "ec2", AwsProtocol.Ec2Query));

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(AwsRequest.AwsQuery("DescribeInstances", "2016-11-15")))!;

        Assert.That(e.ErrorCode, Is.EqualTo("InvalidInstanceID.NotFound"));
        Assert.That(e.RequestId, Is.EqualTo("ea966190-f9aa-478e-9ede-example"));
    }

    [Test]
    public async Task S3_XmlErrorWithRequestIds()
    {
        await using var s3 = new FakeAwsService("s3", (_, _) => FakeAwsService.S3Error(404, "NoSuchKey", "The specified key does not exist."));
        using var client = s3.Client(AwsService.S3);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(new AwsRequest(HttpMethod.Get, "/bucket/missing%20key.txt") { OperationName = "GetObject" }))!;

        Assert.That(e.ErrorCode, Is.EqualTo("NoSuchKey"));
        Assert.That(e.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(e.RequestId, Is.EqualTo("4442587FB7D0A2F9"));
        Assert.That(e.ExtendedRequestId, Is.EqualTo("host-id-2"));
        Assert.That(s3.SignatureFailures, Is.Empty, "S3 requests are signed with S3's path rules and x-amz-content-sha256");
    }

    [Test]
    public async Task S3_BodilessHeadErrorIsNamedFromItsStatus()
    {
        await using var s3 = new FakeAwsService("s3", (request, _) =>
        {
            Assert.That(request.Method, Is.EqualTo("HEAD"));
            return new Reply(404, "") { Headers = [new("x-amz-request-id", "HEADREQ")] };
        });
        using var client = s3.Client(AwsService.S3);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(new AwsRequest(HttpMethod.Head, "/bucket/key") { OperationName = "HeadObject" }))!;

        Assert.That(e.ErrorCode, Is.EqualTo("NotFound"));
        Assert.That(e.RequestId, Is.EqualTo("HEADREQ"));
    }

    [Test]
    public async Task S3_CopyObjectAnswering200WithAnErrorIsAFailureAndIsRetried()
    {
        await using var s3 = new FakeAwsService("s3", (_, call) => call == 1
            ? new Reply(200, "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>R1</RequestId></Error>", "application/xml")
            : new Reply(200, "<CopyObjectResult><ETag>\"etag\"</ETag></CopyObjectResult>", "application/xml"));
        using var client = s3.Client(AwsService.S3);
        var copy = new AwsRequest(HttpMethod.Put, "/bucket/copy") { OperationName = "CopyObject", Headers = [new("x-amz-copy-source", "/bucket/original")] };

        var response = await client.SendAsync(copy);

        Assert.That(response.GetBodyString(), Does.Contain("CopyObjectResult"));
        Assert.That(s3.Calls, Is.EqualTo(2));
    }

    [Test]
    public async Task S3_CopyObjectErrorThatOutlivesRetriesIsThrown()
    {
        await using var s3 = new FakeAwsService("s3", (_, _) =>
            new Reply(200, "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>", "application/xml"));
        using var client = s3.Client(AwsService.S3, maxAttempts: 2);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(new AwsRequest(HttpMethod.Put, "/b/k") { OperationName = "CopyObject" }))!;

        Assert.That(e.ErrorCode, Is.EqualTo("InternalError"));
        Assert.That(e.Attempts, Is.EqualTo(2));
    }

    [Test]
    public async Task S3_GetObjectWhoseContentIsAnErrorDocumentIsASuccess()
    {
        const string document = "<Error><Code>MyAppCode</Code></Error>";
        await using var s3 = new FakeAwsService("s3", (_, _) => new Reply(200, document, "application/xml"));
        using var client = s3.Client(AwsService.S3);

        var response = await client.SendAsync(new AwsRequest(HttpMethod.Get, "/b/error.xml") { OperationName = "GetObject" });

        Assert.That(response.GetBodyString(), Is.EqualTo(document));
    }

    [Test]
    public async Task ABodiless5xxIsNamedFromItsStatusAndOutlivesItsAttempts()
    {
        await using var service = new FakeAwsService("dynamodb", (_, _) => new Reply(503, "", "text/plain"));
        using var client = service.Client(AwsService.DynamoDB);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(GetItem("a")))!;

        Assert.That(e.ErrorCode, Is.EqualTo("ServiceUnavailable"));
        Assert.That(e.ErrorType, Is.EqualTo(AwsErrorType.Receiver));
        Assert.That(e.Attempts, Is.EqualTo(3));
        Assert.That(e.Message, Does.Contain("after 3 attempts"));
        Assert.That(service.Calls, Is.EqualTo(3));
    }

    [Test]
    public async Task ClockSkewIsCorrectedOnceAndTheCallSucceeds()
    {
        // The service's clock is an hour ahead of ours: it judges our first signature expired and says its time in Date.
        var serverClock = new SteppingClock(DateTimeOffset.UtcNow + TimeSpan.FromHours(1));
        await using var service = new FakeAwsService("dynamodb", (_, _) => Reply.Json("{}"), serverClock);
        using var client = service.Client(AwsService.DynamoDB);

        var response = await client.SendAsync(GetItem("a"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(service.SignatureFailures, Has.Count.EqualTo(1), "the first attempt was judged expired, the second was signed on the server's time");
        Assert.That(service.SignatureFailures.Single(), Does.Contain("Signature expired"));
        Assert.That(client.Retry.ClockOffset, Is.EqualTo(TimeSpan.FromHours(1)).Within(TimeSpan.FromSeconds(10)));
        Assert.That(client.Retry.Tokens, Is.EqualTo(RetryPolicy.QuotaCapacity), "a skew correction spends no retry token");
    }

    [Test]
    public async Task EveryFailureIsAnAwsException_ConnectionRefused()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now
        using var client = new AwsClient(AwsService.DynamoDB, new AwsClientOptions
        {
            Region = "us-east-1",
            Endpoint = new Uri($"http://127.0.0.1:{port}/"),
            Credentials = FakeAwsService.Credentials,
            RetryBaseDelay = TimeSpan.FromMilliseconds(1),
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });

        var e = Assert.ThrowsAsync<AwsConnectionException>(() => client.SendAsync(GetItem("a")))!;

        Assert.That(e, Is.InstanceOf<AwsException>());
        Assert.That(e.Attempts, Is.EqualTo(3));
        Assert.That(e.InnerException, Is.InstanceOf<HttpRequestException>());
        Assert.That(e.Message, Does.Contain($"127.0.0.1:{port}"));
    }

    [Test]
    public async Task EveryFailureIsAnAwsException_Timeout()
    {
        await using var slow = new FakeHttpServer(async _ => { await Task.Delay(2000); return Reply.Json("{}"); });
        using var client = new AwsClient(AwsService.DynamoDB, new AwsClientOptions
        {
            Region = "us-east-1", Endpoint = slow.Url, Credentials = FakeAwsService.Credentials, MaxAttempts = 1,
            Timeout = TimeSpan.FromMilliseconds(100), Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });

        AwsException e = Assert.ThrowsAsync<AwsTimeoutException>(() => client.SendAsync(GetItem("a")))!;

        Assert.That(((AwsTimeoutException)e).Timeout, Is.EqualTo(TimeSpan.FromMilliseconds(100)));
        Assert.That(e.Message, Does.Contain("DynamoDB GetItem timed out"));
    }

    [Test]
    public async Task TheCallersCancellationStaysAnOperationCanceledException()
    {
        await using var slow = new FakeHttpServer(async _ => { await Task.Delay(2000); return Reply.Json("{}"); });
        using var client = new AwsClient(AwsService.DynamoDB, new AwsClientOptions
        {
            Region = "us-east-1", Endpoint = slow.Url, Credentials = FakeAwsService.Credentials,
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        Assert.That(() => client.SendAsync(GetItem("a"), cancel.Token), Throws.InstanceOf<OperationCanceledException>());
    }

    [Test]
    public async Task AnAnswerLongerThanTheLimitFailsBeforeItIsRead()
    {
        await using var big = new FakeHttpServer(_ => Reply.Json(new string('x', 200_000)));
        using var client = new AwsClient(AwsService.DynamoDB, new AwsClientOptions
        {
            Region = "us-east-1", Endpoint = big.Url, Credentials = FakeAwsService.Credentials, MaxResponseSize = 100_000,
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });

        var e = Assert.ThrowsAsync<AwsResponseTooLargeException>(() => client.SendAsync(GetItem("a")))!;

        Assert.That(e.Limit, Is.EqualTo(100_000));
        Assert.That(e.Message, Does.Contain("more than 100000 bytes").And.Contain("declared 200000").And.Contain("MaxResponseSize"));
    }

    [Test]
    public async Task FanOutOfAThousandGetItemCallsInInputOrder()
    {
        await using var dynamo = new FakeAwsService("dynamodb", (request, _) =>
        {
            string body = FakeAwsService.Utf8(request);
            string key = body[(body.IndexOf("\"S\":\"", StringComparison.Ordinal) + 5)..body.IndexOf("\"}}", StringComparison.Ordinal)];
            return Reply.Json("{\"Item\":{\"id\":{\"S\":\"" + key + "\"}}}");
        });
        using var client = dynamo.Client(AwsService.DynamoDB);

        var responses = await client.SendAllAsync(Enumerable.Range(0, 1000).Select(i => GetItem("k" + i)), new AwsFanOutOptions { MaxConcurrency = 32 });

        Assert.That(responses, Has.Count.EqualTo(1000));
        for (int i = 0; i < 1000; i++) Assert.That(responses[i].GetBodyString(), Does.Contain($"\"k{i}\""));
        Assert.That(dynamo.SignatureFailures, Is.Empty);
        Assert.That(dynamo.Calls, Is.EqualTo(1000));
    }

    [Test]
    public async Task FanOutSettledAndEachReportFailuresAsOutcomes()
    {
        await using var dynamo = new FakeAwsService("dynamodb", (request, _) => FakeAwsService.Utf8(request).Contains("\"bad") 
            ? FakeAwsService.JsonError(400, "ValidationException", "bad key")
            : Reply.Json("{}"));
        using var client = dynamo.Client(AwsService.DynamoDB);
        var requests = Enumerable.Range(0, 20).Select(i => GetItem(i % 5 == 0 ? "bad" + i : "ok" + i)).ToList();

        var settled = await client.SendAllSettledAsync(requests);
        var each = new List<AwsOutcome<AwsRequest, AwsResponse>>();
        await foreach (var outcome in client.SendEachAsync(requests)) each.Add(outcome);

        Assert.That(settled.Select(o => o.Succeeded), Is.EqualTo(Enumerable.Range(0, 20).Select(i => i % 5 != 0)));
        Assert.That(settled[5].Error, Is.InstanceOf<AwsServiceException>().With.Property("ErrorCode").EqualTo("ValidationException"));
        Assert.That(settled[5].Request, Is.SameAs(requests[5]));
        Assert.That(each.OrderBy(o => o.Index).Select(o => o.Succeeded), Is.EqualTo(settled.Select(o => o.Succeeded)));
        Assert.ThrowsAsync<AwsServiceException>(() => client.SendAllAsync(requests));
    }

    [Test]
    public async Task SendStreamingAsync_RetriesUntilHeadersThenHandsTheUnreadBodyOver()
    {
        await using var service = new FakeAwsService("bedrock", (request, call) => call == 1
            ? new Reply(503, "", "text/plain")
            : new Reply(200, "streamed body", "application/vnd.amazon.eventstream"));
        using var client = service.Client(new AwsService("Bedrock Runtime", "bedrock", AwsProtocol.RestJson1, "bedrock-runtime"));

        using var response = await client.SendStreamingAsync(new AwsRequest(HttpMethod.Post, "/model/m/converse-stream") { ContentType = "application/json", Body = "{}"u8.ToArray() });

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/vnd.amazon.eventstream"));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("streamed body"));
        Assert.That(service.Calls, Is.EqualTo(2), "the 503 before the stream was retried");
        Assert.That(service.SignatureFailures, Is.Empty);
    }

    [Test]
    public async Task SendStreamingAsync_AnErrorAnswerIsThrownAsForSendAsync()
    {
        await using var service = new FakeAwsService("bedrock", (_, _) =>
            new Reply(400, """{"message":"The provided model identifier is invalid."}""") { Headers = [new("x-amzn-ErrorType", "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/")] });
        using var client = service.Client(new AwsService("Bedrock Runtime", "bedrock", AwsProtocol.RestJson1, "bedrock-runtime"));

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendStreamingAsync(new AwsRequest(HttpMethod.Post, "/model/nope/converse-stream")))!;

        Assert.That(e.ErrorCode, Is.EqualTo("ValidationException"));
        Assert.That(e.ErrorMessage, Is.EqualTo("The provided model identifier is invalid."));
    }

    [Test]
    public async Task TheAwsJsonHelperRefusesATargetWithoutAnOperation()
    {
        var e = Assert.Throws<ArgumentException>(() => AwsRequest.AwsJson("GetItem", "{}"))!;
        Assert.That(e.Message, Does.Contain("<TargetPrefix>.<Operation>").And.Contain("DynamoDB_20120810.GetItem"));
        await Task.CompletedTask;
    }

    [Test]
    public async Task AMalformedPathIsRefusedBeforeAnythingIsSent()
    {
        await using var service = new FakeAwsService("dynamodb", (_, _) => Reply.Json("{}"));
        using var client = service.Client(AwsService.S3);

        var e = Assert.ThrowsAsync<ArgumentException>(() => client.SendAsync(new AwsRequest(HttpMethod.Get, "/bucket/a key")))!;

        Assert.That(e.Message, Does.Contain("position 9").And.Contain("percent-encoded"));
        Assert.That(service.Calls, Is.Zero);
    }

    [Test]
    public async Task TheRequestMayNotSetHostOrAuthorization()
    {
        await using var service = new FakeAwsService("dynamodb", (_, _) => Reply.Json("{}"));
        using var client = service.Client(AwsService.DynamoDB);

        var e = Assert.ThrowsAsync<ArgumentException>(() => client.SendAsync(new AwsRequest(HttpMethod.Get) { Headers = [new("Host", "evil.example")] }))!;

        Assert.That(e.Message, Does.Contain("Host").And.Contain("remove it"));
    }
}

// Retry settings from code, environment and profile, and the endpoint flags.
public class AwsClientSettingsTests : CredentialsTestBase
{
    private AwsClient Make(AwsClientOptions? options = null) =>
        new(AwsService.DynamoDB, new AwsClientOptions
        {
            Region = options?.Region ?? "us-east-1",
            Endpoint = options?.Endpoint,
            RetryMode = options?.RetryMode,
            MaxAttempts = options?.MaxAttempts,
            UseFIPSEndpoint = options?.UseFIPSEndpoint,
            UseDualstackEndpoint = options?.UseDualstackEndpoint,
            Credentials = FakeAwsService.Credentials,
            Config = Options(),
        });

    [Test]
    public void Defaults_AreStandardAndThreeAttempts()
    {
        using var client = Make();
        Assert.That(client.RetryMode, Is.EqualTo(AwsRetryMode.Standard));
        Assert.That(client.MaxAttempts, Is.EqualTo(3));
        Assert.That(client.Endpoint, Is.EqualTo(new Uri("https://dynamodb.us-east-1.amazonaws.com/")));
    }

    [Test]
    public void TheProfileIsReadWhenTheEnvironmentIsSilent()
    {
        Home.WriteConfig("[default]\nretry_mode = adaptive\nmax_attempts = 7\nuse_fips_endpoint = true\n");
        using var client = Make();
        Assert.That(client.RetryMode, Is.EqualTo(AwsRetryMode.Adaptive));
        Assert.That(client.MaxAttempts, Is.EqualTo(7));
        Assert.That(client.Endpoint.Host, Is.EqualTo("dynamodb-fips.us-east-1.amazonaws.com"));
    }

    [Test]
    public void TheEnvironmentWinsOverTheProfile()
    {
        Home.WriteConfig("[default]\nretry_mode = adaptive\nmax_attempts = 7\nuse_dualstack_endpoint = false\n");
        Env["AWS_RETRY_MODE"] = "standard";
        Env["AWS_MAX_ATTEMPTS"] = "2";
        Env["AWS_USE_DUALSTACK_ENDPOINT"] = "true";
        using var client = Make();
        Assert.That(client.RetryMode, Is.EqualTo(AwsRetryMode.Standard));
        Assert.That(client.MaxAttempts, Is.EqualTo(2));
        Assert.That(client.Endpoint.Host, Is.EqualTo("dynamodb.us-east-1.api.aws"));
    }

    [Test]
    public void CodeWinsOverEverything()
    {
        Env["AWS_RETRY_MODE"] = "adaptive";
        Env["AWS_MAX_ATTEMPTS"] = "9";
        Env["AWS_USE_FIPS_ENDPOINT"] = "true";
        using var client = Make(new AwsClientOptions { RetryMode = AwsRetryMode.Standard, MaxAttempts = 1, UseFIPSEndpoint = false });
        Assert.That(client.RetryMode, Is.EqualTo(AwsRetryMode.Standard));
        Assert.That(client.MaxAttempts, Is.EqualTo(1));
        Assert.That(client.Endpoint.Host, Is.EqualTo("dynamodb.us-east-1.amazonaws.com"));
    }

    [Test]
    public void LegacyReadsAsStandard()
    {
        Env["AWS_RETRY_MODE"] = "legacy";
        using var client = Make();
        Assert.That(client.RetryMode, Is.EqualTo(AwsRetryMode.Standard));
    }

    [Test]
    public void AMalformedRetryModeNamesWhereItIsSet()
    {
        Env["AWS_RETRY_MODE"] = "fast";
        var e = Assert.Throws<AwsConfigurationException>(() => Make())!;
        Assert.That(e.Message, Does.Contain("AWS_RETRY_MODE").And.Contain("'fast'").And.Contain("standard or adaptive"));
    }

    [Test]
    public void AMalformedMaxAttemptsInTheProfileNamesTheFileAndLine()
    {
        string path = Home.WriteConfig("[default]\nregion = us-east-1\nmax_attempts = zero\n");
        var e = Assert.Throws<AwsConfigurationException>(() => Make())!;
        Assert.That(e.Message, Does.Contain("max_attempts").And.Contain("'zero'").And.Contain("whole number"));
        Assert.That(e.FilePath, Is.EqualTo(path));
        Assert.That(e.LineNumber, Is.EqualTo(3));
    }

    [Test]
    public void MaxAttemptsBelowOneInCodeIsOutOfRange()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Make(new AwsClientOptions { MaxAttempts = 0 }))!;
        Assert.That(e.Message, Does.Contain("at least 1"));
    }

    [Test]
    public void TheClientsClockReachesTheDefaultChain()
    {
        var clock = new SteppingClock(Start);
        Env["AWS_ACCESS_KEY_ID"] = LongTermId;
        Env["AWS_SECRET_ACCESS_KEY"] = LongTermSecret;
        using var client = new AwsClient(AwsService.DynamoDB, new AwsClientOptions
        {
            Region = "us-east-1",
            Clock = clock,
            Config = new AwsConfigOptions { GetEnvironmentVariable = Env.Get, HomeDirectory = Home.Directory },
        });
        Assert.That(client.Clock, Is.SameAs(clock));
    }
}

public class AwsClientInfrastructureTests : CredentialsTestBase
{
    [Test]
    public async Task StsAssumeRoleOfTheChainIsRetriedOnAThrottle()
    {
        await using var sts = new FakeSts(Clock);
        sts.Trust(new AwsCredentials(LongTermId, LongTermSecret));
        int calls = 0;
        sts.Override = _ => Interlocked.Increment(ref calls) == 1 ? FakeSts.Error(400, "Throttling", "Rate exceeded") : null;
        Home.WriteConfig($"[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\nregion = {FakeSts.Region}\n[profile base]\n");
        Home.WriteCredentials($"[base]\naws_access_key_id = {LongTermId}\naws_secret_access_key = {LongTermSecret}\n");
        var chain = AwsCredentialsChain.CreateDefault(Options(sts: sts.Server.Url, profile: "dev"));

        var credentials = await chain.GetCredentialsAsync();

        Assert.That(credentials.AccessKeyId, Does.StartWith("ASIASTS"));
        Assert.That(sts.Calls.Count(c => c.Action == "AssumeRole"), Is.EqualTo(2), "throttled once, then answered");
    }

    [Test]
    public async Task StsRefusalIsACredentialsErrorThatKeepsTheServiceError()
    {
        await using var sts = new FakeSts(Clock);
        sts.Trust(new AwsCredentials(LongTermId, LongTermSecret));
        sts.Override = _ => FakeSts.Error(403, "AccessDenied", "User is not authorized to perform: sts:AssumeRole");
        Home.WriteConfig($"[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\nregion = {FakeSts.Region}\n[profile base]\n");
        Home.WriteCredentials($"[base]\naws_access_key_id = {LongTermId}\naws_secret_access_key = {LongTermSecret}\n");
        var chain = AwsCredentialsChain.CreateDefault(Options(sts: sts.Server.Url, profile: "dev"));

        var e = Assert.ThrowsAsync<AwsCredentialsException>(async () => await chain.GetCredentialsAsync())!;

        Assert.That(e.InnerException, Is.InstanceOf<AwsServiceException>().With.Property("ErrorCode").EqualTo("AccessDenied"));
        Assert.That(e.Message, Does.Contain("AssumeRole").And.Contain("AccessDenied").And.Contain("not authorized"));
        Assert.That(sts.Calls, Has.Count.EqualTo(1), "a refusal is not retried");
        AssertNoSecret(e.ToString(), new AwsCredentials(LongTermId, LongTermSecret));
    }

    [Test]
    public async Task DefaultConnectionsUseTcpKeepAlive()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var accept = listener.AcceptTcpClientAsync();
            var endpoint = new DnsEndPoint("127.0.0.1", ((IPEndPoint)listener.LocalEndpoint).Port);
            var context = (SocketsHttpConnectionContext)Activator.CreateInstance(typeof(SocketsHttpConnectionContext),
                System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance, null, [endpoint, new HttpRequestMessage()], null)!;
            await using var stream = (NetworkStream)await AwsHttp.ConnectWithKeepAliveAsync(context, CancellationToken.None);
            using var accepted = await accept;

            Assert.That((int)stream.Socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!, Is.Not.Zero);
            Assert.That((int)stream.Socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime)!, Is.EqualTo(60));
            Assert.That((int)stream.Socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval)!, Is.EqualTo(15));
        }
        finally
        {
            listener.Stop();
        }
    }

    [Test]
    public void AdaptiveRateLimiter_IsOffUntilAThrottleThenCutsTheRateAndGrowsItBack()
    {
        var clock = new SteppingClock(Start);
        var limiter = new AdaptiveRateLimiter(clock);
        // 20 calls a second for 5 seconds: the measured rate settles near 20.
        for (int i = 0; i < 100; i++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(50));
            limiter.Update(throttled: false);
        }
        Assert.That(limiter.Enabled, Is.False, "no token bucket before the first throttle");
        double measured = limiter.MeasuredRate;
        Assert.That(measured, Is.EqualTo(20).Within(2));

        limiter.Update(throttled: true);
        Assert.That(limiter.Enabled, Is.True);
        Assert.That(limiter.FillRate, Is.EqualTo(0.7 * limiter.MeasuredRate).Within(0.01), "beta: 0.7 of the rate measured at the throttle");
        double afterThrottle = limiter.FillRate;

        for (int i = 0; i < 40; i++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(100));
            limiter.Update(throttled: false);
        }
        Assert.That(limiter.FillRate, Is.GreaterThan(afterThrottle), "the cubic grows the rate back");
    }

    [Test]
    public async Task AdaptiveRateLimiter_AcquireWaitsOnTheClockOnceEnabled()
    {
        var limiter = new AdaptiveRateLimiter(TimeProvider.System);
        await limiter.AcquireAsync(CancellationToken.None); // off: returns at once
        limiter.Update(throttled: true);                     // measured rate ~0: the bucket fills at the floor, 0.5 a second
        var waited = System.Diagnostics.Stopwatch.StartNew();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        Assert.That(async () => { await limiter.AcquireAsync(cancel.Token); await limiter.AcquireAsync(cancel.Token); },
            Throws.InstanceOf<OperationCanceledException>(), "at 0.5 tokens a second, two tokens take more than 300 ms");
    }

    [Test]
    public async Task ConcurrencyLimiter_FindsTheServicesLimitFromTheAttemptsThrottled()
    {
        var limiter = new ConcurrencyLimiter(256);
        var started = new List<int>();
        for (int i = 0; i < 256; i++) started.Add(await limiter.AcquireAsync(CancellationToken.None));
        Assert.That(started, Is.EqualTo(Enumerable.Range(1, 256)));
        // The service runs 100 at once: attempts that started beyond 100 are throttled.
        for (int i = 255; i >= 100; i--) limiter.Release(started[i], concurrencyThrottled: true, succeeded: false);
        Assert.That(limiter.Limit, Is.EqualTo(100));
        Assert.That(limiter.Throttles, Is.EqualTo(156));
        // A hundred successes raise the limit by about one.
        for (int i = 0; i < 100; i++) limiter.Release(started[i], concurrencyThrottled: false, succeeded: true);
        Assert.That(limiter.Limit, Is.EqualTo(100).Or.EqualTo(101));
    }
}
