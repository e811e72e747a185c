using System.Net;
using System.Text;
using System.Text.Json;

namespace SigV4Lite.Tests;

/// <summary>
/// The README's Bedrock ConverseStream recipe, run against a loopback Bedrock runtime that checks the SigV4 signature
/// and answers ConverseStream-shaped frames: the text deltas printed in order, an exception event in the middle
/// thrown after the text before it, throttling before the stream retried.
/// </summary>
public class ConverseStreamRecipeTests
{
    private const string ModelPath = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream";

    private static readonly AwsService BedrockRuntime = new("Bedrock Runtime", "bedrock", AwsProtocol.RestJson1, "bedrock-runtime");

    [Test]
    public async Task TheRecipePrintsTheTextDeltasInOrder()
    {
        await using var service = new FakeAwsService("bedrock", (request, _) => Stream(ConverseStreamFrames.Answer(["Hello", ", ", "wörld", "!"])));
        using var bedrock = service.Client(BedrockRuntime);
        using var output = new StringWriter();

        await ConverseStreamRecipe.RunAsync(bedrock, output, CancellationToken.None);

        Assert.That(output.ToString(), Is.EqualTo("Hello, wörld!"));
        Assert.That(service.SignatureFailures, Is.Empty);
        var received = service.Server.Requests.Single();
        Assert.That((received.Method, received.Path, received.Header("Content-Type")), Is.EqualTo(("POST", ModelPath, "application/json")));
        using var body = JsonDocument.Parse(received.Body);
        Assert.That(body.RootElement.GetProperty("messages")[0].GetProperty("content")[0].GetProperty("text").GetString(), Is.EqualTo("Write a haiku about signatures."));
    }

    [Test]
    public async Task AnExceptionEventInTheMiddleIsThrownAfterTheTextBeforeIt()
    {
        byte[] frames = [.. ConverseStreamFrames.Event("messageStart", new { role = "assistant" }),
            .. ConverseStreamFrames.Event("contentBlockDelta", new { contentBlockIndex = 0, delta = new { text = "Hel" } }),
            .. ConverseStreamFrames.Exception("modelStreamErrorException", "The model stopped responding.")];
        await using var service = new FakeAwsService("bedrock", (request, _) => Stream(frames));
        using var bedrock = service.Client(BedrockRuntime);
        using var output = new StringWriter();

        var e = Assert.ThrowsAsync<EventStreamErrorException>(() => ConverseStreamRecipe.RunAsync(bedrock, output, CancellationToken.None))!;

        Assert.That(output.ToString(), Is.EqualTo("Hel"));
        Assert.That((e.Kind, e.ErrorCode, e.ErrorMessage), Is.EqualTo((EventStreamErrorKind.ExceptionMessage, "modelStreamErrorException", "The model stopped responding.")));
    }

    [Test]
    public async Task ThrottlingBeforeTheStreamIsRetried()
    {
        await using var service = new FakeAwsService("bedrock", (request, call) => call == 1
            ? new Reply(429, """{"message":"Too many requests, please wait before trying again."}""") { Headers = [new("x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")] }
            : Stream(ConverseStreamFrames.Answer(["retried"])));
        using var bedrock = service.Client(BedrockRuntime);
        using var output = new StringWriter();

        await ConverseStreamRecipe.RunAsync(bedrock, output, CancellationToken.None);

        Assert.That(output.ToString(), Is.EqualTo("retried"));
        Assert.That(service.Calls, Is.EqualTo(2));
    }

    [Test]
    public void ReadEventStreamAsync_RefusesAnErrorAnswer_AtOnce()
    {
        using var answer = new HttpResponseMessage(HttpStatusCode.BadRequest) { Content = new StringContent("""{"message":"bad"}""") };

        var e = Assert.Throws<ArgumentException>(() => answer.ReadEventStreamAsync())!;

        Assert.That(e.ParamName, Is.EqualTo("response"));
        Assert.That(e.Message, Does.StartWith("The answer is HTTP 400: an error, not an event stream."));
        Assert.Throws<ArgumentNullException>(() => ((HttpResponseMessage)null!).ReadEventStreamAsync());
    }

    [Test]
    public async Task ReadEventStreamAsync_HandsOutEveryMessage_ThenDisposesTheAnswer()
    {
        var content = new StreamContent(new MemoryStream(ConverseStreamFrames.Answer(["a", "b"])));
        var answer = new HttpResponseMessage(HttpStatusCode.OK) { Content = content };
        var types = new List<string?>();

        await foreach (var message in answer.ReadEventStreamAsync()) types.Add(message.EventType);

        Assert.That(types, Is.EqualTo(new[] { "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata" }));
        Assert.ThrowsAsync<ObjectDisposedException>(() => content.ReadAsStringAsync(), "the answer is disposed once read");
    }

    private static Reply Stream(byte[] frames) => new(200, "", "application/vnd.amazon.eventstream") { Bytes = frames, Headers = [new("x-amzn-RequestId", "req-1")] };
}

/// <summary>The README recipe "Streaming answers of any service: Bedrock ConverseStream", as it is there, writing to
/// <c>output</c> where the README writes to the console.</summary>
internal static class ConverseStreamRecipe
{
    public static async Task RunAsync(AwsClient bedrock, TextWriter output, CancellationToken cancellationToken)
    {
        string modelId = "anthropic.claude-3-haiku-20240307-v1:0";
        var request = new AwsRequest(HttpMethod.Post, $"/model/{Uri.EscapeDataString(modelId)}/converse-stream")
        {
            ContentType = "application/json",
            Body = Encoding.UTF8.GetBytes("""{"messages": [{"role": "user", "content": [{"text": "Write a haiku about signatures."}]}], "inferenceConfig": {"maxTokens": 200}}"""),
            OperationName = "ConverseStream",
        };
        using HttpResponseMessage response = await bedrock.SendStreamingAsync(request, cancellationToken);
        await foreach (EventStreamMessage message in response.ReadEventStreamAsync(cancellationToken))
        {
            message.EnsureEvent();                             // throttlingException, modelStreamErrorException, ...: thrown
            if (!message.IsEvent("contentBlockDelta")) continue; // messageStart, contentBlockStop, messageStop, metadata
            using var json = JsonDocument.Parse(message.Payload);
            if (json.RootElement.GetProperty("delta").TryGetProperty("text", out var text)) output.Write(text.GetString());
        }
    }
}
