using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using SigV4Lite.Emulator;

namespace SigV4Lite.Tests;

/// <summary>
/// README.md's C# blocks: every one compiles (see <see cref="ReadmeRecipes"/>), and the recipes that need no AWS run
/// as they are written against local fakes: the Lambda emulator, and loopback DynamoDB, STS and SQS services that
/// check the SigV4 signature. A recipe finds its endpoint and credentials as in real life, from the environment
/// (<see cref="AwsEnvironment"/>: AWS_ENDPOINT_URL names the fake). The Bedrock recipe runs in ConverseStreamRecipeTests.
/// </summary>
[NonParallelizable]
public class ReadmeRecipeTests
{
    private static ReadmeRecipes Readme => ReadmeRecipes.Compiled;

    [Test]
    public void EveryCSharpBlockCompiles()
    {
        TestContext.Progress.WriteLine($"README: {Readme.Blocks.Count} C# blocks compiled in {Readme.CompileTime.TotalSeconds:F1} s");

        Assert.That(Readme.Problems, Is.Empty, "README.md's C# blocks do not compile:\n" + Readme.Describe(Readme.Problems));
        Assert.That(Readme.Blocks, Is.Not.Empty);
    }

    [Test]
    public void BlocksAreFoundAsMarkdownReadsThem()
    {
        string[] markdown =
        [
            "# Title",                      // 1
            "```csharp",                    // 2
            "int a = 1;",                   // 3
            "```",                          // 4
            "- an item:",                   // 5
            "",                             // 6
            "  ```cs",                      // 7
            "  int b = 2;",                 // 8
            "  ```",                        // 9
            "```sh",                        // 10
            "dotnet test",                  // 11
            "```",                          // 12
            "~~~~ C# title=\"x\"",          // 13
            "string c = \"\"\"",            // 14
            "```",                          // 15
            "\"\"\";",                      // 16
            "~~~~",                         // 17
            "````csharp",                   // 18
            "int d = 4;",                   // 19
        ];

        var blocks = ReadmeRecipes.CSharpBlocks(markdown);

        Assert.That(blocks, Is.EqualTo(new[]
        {
            new ReadmeBlock(3, "int a = 1;"),
            new ReadmeBlock(8, "int b = 2;"),
            new ReadmeBlock(14, "string c = \"\"\"\n```\n\"\"\";"),
            new ReadmeBlock(19, "int d = 4;"), // an unclosed fence runs to the end
        }));
    }

    [Test]
    public void ABlockThatDoesNotCompileIsNamedByItsReadmeLineAndTheCompilersMessage()
    {
        var readme = ReadmeRecipes.FromMarkdown("""
            # Broken

            ```csharp
            using System.Text;

            int count = "three";
            Console.WriteLine(Encoding.UTF8.GetByteCount(unknown));
            ```
            """);

        Assert.That(readme.Describe(readme.Problems), Is.EqualTo("""
            README.md:6:13: error CS0029: Cannot implicitly convert type 'string' to 'int'
                int count = "three";
            README.md:7:46: error CS0103: The name 'unknown' does not exist in the current context
                Console.WriteLine(Encoding.UTF8.GetByteCount(unknown));
            """));
    }

    [Test]
    public async Task FirstProgram_InvokesTheFunction()
    {
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { EchoUnknownFunctions = true });
        using var aws = new AwsEnvironment(("AWS_ENDPOINT_URL", emulator.Endpoint.ToString()));

        string output = await Readme.RunAsync("""lambda.InvokeAsync(new LambdaRequest("my-function",""");

        Assert.That(output, Is.EqualTo("""{"function":"my-function","payload":{"hello": 1}}""" + "\n"));
        Assert.That(emulator.Counters.SignatureFailures, Is.Zero);
    }

    [Test]
    public async Task LambdaFanOut_InvokesEveryFunctionTwice_AndReportsNoFailure()
    {
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { EchoUnknownFunctions = true });
        using var aws = new AwsEnvironment(("AWS_ENDPOINT_URL", emulator.Endpoint.ToString()));

        string output = await Readme.RunAsync("lambda.InvokeEachAsync(requests)");

        Assert.That(output, Is.EqualTo("""{"function":"hello-world-99","payload":{"hello": 99}}""" + "\n"), "the last answer, and no failure");
        Assert.That(emulator.Counters.Requests, Is.EqualTo(200));
        Assert.That(emulator.Counters.SignatureFailures, Is.Zero);
    }

    [Test]
    public async Task StreamingInvoke_PrintsTheChunksThenTheLog()
    {
        await using var emulator = await LambdaEmulator.StartAsync();
        emulator.AddStreamingFunction("my-streaming-function", async (invocation, response, cancellationToken) =>
        {
            invocation.Log("greeting " + Encoding.UTF8.GetString(invocation.Payload.Span));
            foreach (string chunk in new[] { "Hel", "lo, ", "wörld" }) await response.WriteAsync(chunk, cancellationToken);
        });
        using var aws = new AwsEnvironment(("AWS_ENDPOINT_URL", emulator.Endpoint.ToString()));

        string output = await Readme.RunAsync("InvokeWithResponseStreamAsync(", ("cancellationToken", CancellationToken.None));

        Assert.That(output, Is.EqualTo("Hello, wörld" + """greeting {"prompt": "hi"}""" + "\n\n"), "the chunks as they came, then the log tail");
        Assert.That(emulator.Counters.SignatureFailures, Is.Zero);
    }

    [Test]
    public async Task DynamoDbGetItem_PrintsTheAttribute()
    {
        await using var dynamo = new FakeAwsService("dynamodb", (request, _) => new Reply(200,
            """{"Item": {"id": {"S": "42"}, "name": {"S": "Ada Lovelace"}}}""", "application/x-amz-json-1.0"));
        using var aws = new AwsEnvironment(("AWS_ENDPOINT_URL", dynamo.Url.ToString()));

        string output = await Readme.RunAsync("DynamoDB_20120810.GetItem");

        Assert.That(output, Is.EqualTo("Ada Lovelace\n"));
        var received = dynamo.Server.Requests.Single();
        Assert.That(received.Header("X-Amz-Target"), Is.EqualTo("DynamoDB_20120810.GetItem"));
        using var sent = JsonDocument.Parse(received.Body);
        Assert.That(sent.RootElement.GetProperty("Key").GetProperty("id").GetProperty("S").GetString(), Is.EqualTo("42"));
        Assert.That(dynamo.SignatureFailures, Is.Empty);
    }

    [Test]
    public async Task StsGetCallerIdentity_PrintsTheArn()
    {
        await using var sts = new FakeAwsService("sts", (request, _) => new Reply(200, """
            <GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
              <GetCallerIdentityResult>
                <Arn>arn:aws:iam::123456789012:user/ada</Arn>
                <UserId>AIDAEXAMPLE</UserId>
                <Account>123456789012</Account>
              </GetCallerIdentityResult>
              <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
            </GetCallerIdentityResponse>
            """, "text/xml"));
        using var aws = new AwsEnvironment(("AWS_ENDPOINT_URL", sts.Url.ToString()));

        string output = await Readme.RunAsync("GetCallerIdentity\", \"2011-06-15\"");

        Assert.That(output, Is.EqualTo("arn:aws:iam::123456789012:user/ada\n"));
        Assert.That(FakeAwsService.Utf8(sts.Server.Requests.Single()), Is.EqualTo("Action=GetCallerIdentity&Version=2011-06-15"));
        Assert.That(sts.SignatureFailures, Is.Empty);
    }

    [Test]
    public async Task SqsSendMessage_SendsOneMessagePerOrder()
    {
        await using var sqs = new FakeAwsService("sqs", (request, _) => new Reply(200,
            $$"""{"MessageId": "{{Guid.NewGuid()}}", "MD5OfMessageBody": "0"}""", "application/x-amz-json-1.0"));
        using var aws = new AwsEnvironment(("AWS_ENDPOINT_URL", sqs.Url.ToString()));
        const string queueUrl = "https://sqs.us-east-1.amazonaws.com/123456789012/orders";

        string output = await Readme.RunAsync("AmazonSQS.SendMessage", ("orderIds", Enumerable.Range(1, 20)), ("queueUrl", queueUrl));

        Assert.That(output, Is.EqualTo("20 messages sent\n"));
        var bodies = sqs.Server.Requests.Select(request => JsonDocument.Parse(request.Body).RootElement).ToList();
        Assert.That(bodies.Select(body => body.GetProperty("QueueUrl").GetString()).Distinct(), Is.EqualTo(new[] { queueUrl }));
        Assert.That(bodies.Select(body => body.GetProperty("MessageBody").GetString()), Is.EquivalentTo(Enumerable.Range(1, 20).Select(id => $"order {id}")));
        Assert.That(sqs.SignatureFailures, Is.Empty);
    }

    [Test]
    public async Task PresignedS3Url_IsValidForS3ForFifteenMinutes()
    {
        using var aws = new AwsEnvironment();

        string output = await Readme.RunAsync("my-bucket.s3.us-east-1.amazonaws.com", ("clusterName", "my-cluster"));

        var url = new Uri(output.Trim());
        Assert.That((url.Host, url.AbsolutePath), Is.EqualTo(("my-bucket.s3.us-east-1.amazonaws.com", "/report%202026.pdf")));
        Assert.That(url.Query, Does.Contain("X-Amz-Expires=900&"));
        var s3 = new SigV4Verifier(id => id == FakeAwsService.Credentials.AccessKeyId ? FakeAwsService.Credentials : null, new SigV4Options("s3", "us-east-1"));
        var verdict = s3.Verify("GET", url.AbsolutePath, url.Query[1..], [new("Host", url.Host)], []);
        Assert.That(verdict.IsValid, verdict.ToString());
    }

    [Test]
    public async Task HttpClientFactory_TheTypedClientsHandlerSigns()
    {
        var services = new ServiceCollection();
        using var aws = new AwsEnvironment();

        await Readme.RunAsync("services.AddHttpClient<OrdersApi>", ("services", services));

        using var provider = services.BuildServiceProvider();
        var handler = provider.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler("OrdersApi");
        var chain = new List<HttpMessageHandler>();
        for (HttpMessageHandler? link = handler; link is not null; link = (link as DelegatingHandler)?.InnerHandler) chain.Add(link);
        Assert.That(chain.OfType<SigV4Handler>().Count(), Is.EqualTo(1), string.Join(" > ", chain.Select(link => link.GetType().Name)));
        Assert.That(provider.GetRequiredService<IAwsCredentialsProvider>(), Is.InstanceOf<AwsCredentialsChain>());
    }

    [Test]
    public async Task CredentialsChain_ReadsTheNamedProfile()
    {
        string home = Directory.CreateTempSubdirectory("sigv4lite-readme-").FullName;
        try
        {
            string config = Path.Combine(home, "config");
            File.WriteAllText(config, """
                [profile production]
                region = eu-west-2
                aws_access_key_id = AKIDPRODUCTION
                aws_secret_access_key = production-secret
                """);
            using var aws = new AwsEnvironment(("AWS_CONFIG_FILE", config), ("AWS_ACCESS_KEY_ID", null), ("AWS_SECRET_ACCESS_KEY", null));

            string output = await Readme.RunAsync("AwsCredentialsChain.CreateDefault(production)");

            Assert.That(output, Is.EqualTo("AKIDPRODUCTION from profile 'production'\n"));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Test]
    public async Task EventStreamReader_PrintsThePayloadChunks()
    {
        byte[] Event(string type, string payload) => EventStreamEncoder.Encode(
            [new(":event-type", type), new(":message-type", "event")], Encoding.UTF8.GetBytes(payload));
        byte[] frames = [.. Event("PayloadChunk", "Hello, "), .. Event("PayloadChunk", "wörld"), .. Event("InvokeComplete", "{}")];

        string output = await Readme.RunAsync("new EventStreamReader(stream)", ("stream", new MemoryStream(frames)), ("cancellationToken", CancellationToken.None));

        Assert.That(output, Is.EqualTo("Hello, wörld"));
    }

    [Test]
    public async Task SignPlainValues_AddsTheSignatureAndPrintsWhatWasSigned()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/my-function/invocations");

        string output = await Readme.RunAsync("signature.RedactedCanonicalRequest", ("request", request), ("body", "{}"u8.ToArray()),
            ("credentials", new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")));

        Assert.That(request.Headers.NonValidated["Authorization"].ToString(), Does.StartWith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        Assert.That(output, Does.StartWith("POST\n/2015-03-31/functions/my-function/invocations\n\n"));
        Assert.That(output, Does.Contain("x-amz-security-token:(session token)\n"));
        Assert.That(output, Does.Not.Contain("session-token"));
        Assert.That(output, Does.Contain("AWS4-HMAC-SHA256\n"), "the string to sign");
    }

    [Test]
    public async Task Verifier_PrintsNothingForAValidRequest_AndWhyNotForAnAlteredOne()
    {
        var credentials = FakeAwsService.Credentials;
        var options = new SigV4Options("execute-api", "us-east-1");
        byte[] body = """{"order": 42}"""u8.ToArray();
        KeyValuePair<string, string>[] sent = [new("Host", "abc123.execute-api.us-east-1.amazonaws.com"), new("Content-Type", "application/json")];
        var signature = SigV4.Sign("POST", "/prod/orders", "", sent, SigV4.HashPayload(body), DateTimeOffset.UtcNow, credentials, options);
        var received = sent.Concat(signature.HeadersToAdd).ToList();
        (string, object?)[] request = [("keys", new Dictionary<string, AwsCredentials> { [credentials.AccessKeyId] = credentials }),
            ("method", "POST"), ("rawPath", "/prod/orders"), ("rawQuery", ""), ("headers", received)];

        string valid = await Readme.RunAsync("verifier.Verify(", [.. request, ("body", body)]);
        string altered = await Readme.RunAsync("verifier.Verify(", [.. request, ("body", """{"order": 43}"""u8.ToArray())]);

        Assert.That(valid, Is.Empty);
        Assert.That(altered, Does.StartWith("403 InvalidSignatureException: "));
    }
}
