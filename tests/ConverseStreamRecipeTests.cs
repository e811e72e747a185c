using System.Net;
using System.Text;
using System.Text.Json;

namespace SigV4Lite.Tests;

/// <summary>
/// The README's Bedrock ConverseStream recipe, its block run as it is there (see <see cref="ReadmeRecipes"/>) against a
/// loopback Bedrock runtime, named by AWS_ENDPOINT_URL, that checks the SigV4 signature and answers
/// ConverseStream-shaped frames: the text deltas printed in order, an exception event in the middle thrown after the
/// text before it, throttling before the stream retried.
/// </summary>
[NonParallelizable]
public class ConverseStreamRecipeTests
{
    private const string ModelPath = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream";

    // Runs the recipe with its console output written to `output`.
    private static async Task RunRecipeAsync(FakeAwsService bedrock, TextWriter output)
    {
        using var aws = new AwsEnvironment(("AWS_ENDPOINT_URL", bedrock.Url.ToString()));
        await ReadmeRecipes.Compiled.RunAsync("/converse-stream", output, ("cancellationToken", CancellationToken.None));
    }

    [Test]
    public async Task TheRecipePrintsTheTextDeltasInOrder()
    {
        await using var service = new FakeAwsService("bedrock", (request, _) => Stream(ConverseStreamFrames.Answer(["Hello", ", ", "wörld", "!"])));
        using var output = new StringWriter();

        await RunRecipeAsync(service, output);

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
        using var output = new StringWriter();

        var e = Assert.ThrowsAsync<EventStreamErrorException>(() => RunRecipeAsync(service, output))!;

        Assert.That(output.ToString(), Is.EqualTo("Hel"));
        Assert.That((e.Kind, e.ErrorCode, e.ErrorMessage), Is.EqualTo((EventStreamErrorKind.ExceptionMessage, "modelStreamErrorException", "The model stopped responding.")));
    }

    [Test]
    public async Task ThrottlingBeforeTheStreamIsRetried()
    {
        await using var service = new FakeAwsService("bedrock", (request, call) => call == 1
            ? new Reply(429, """{"message":"Too many requests, please wait before trying again."}""") { Headers = [new("x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")] }
            : Stream(ConverseStreamFrames.Answer(["retried"])));
        using var output = new StringWriter();

        await RunRecipeAsync(service, output);

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
