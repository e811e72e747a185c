using System.Net;
using System.Text;

namespace SigV4Lite.Tests;

// Dispose ends a client for new calls and leaves the calls already made alone: `using var client = ...; return
// client.SendAsync(...)` must still answer.
public class ClientDisposeTests
{
    private static AwsClientOptions Options(Uri endpoint, HttpMessageHandler? handler = null) => new()
    {
        Region = "us-east-1",
        Endpoint = endpoint,
        Credentials = FakeAwsService.Credentials,
        HttpHandler = handler,
        Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
    };

    [Test]
    public async Task ACallMadeBeforeDisposeFinishesAndOneMadeAfterIsRefusedNamingTheClient()
    {
        var release = new TaskCompletionSource();
        await using var server = new FakeHttpServer(async _ => { await release.Task; return new Reply(200, "{}", "application/x-amz-json-1.0"); });
        var client = new AwsClient(AwsService.DynamoDB, Options(server.Url));
        var before = client.SendAsync(AwsRequest.AwsJson("DynamoDB_20120810.GetItem", "{}"));
        await EventuallyAsync(() => server.Requests.Count == 1);
        client.Dispose();
        release.SetResult();
        Assert.That((await before).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var e = Assert.ThrowsAsync<ObjectDisposedException>(() => client.SendAsync(AwsRequest.AwsJson("DynamoDB_20120810.GetItem", "{}")))!;
        Assert.That(e.ObjectName, Is.EqualTo("AwsClient"));
        Assert.That(server.Requests, Has.Count.EqualTo(1), "nothing sent after Dispose");
    }

    [Test]
    public async Task ADisposedLambdaClientSaysItIsTheLambdaClientForEveryWayIn()
    {
        await using var server = new FakeHttpServer(_ => new Reply(200, "{}", "application/json"));
        var lambda = new LambdaClient(Options(server.Url));
        lambda.Dispose();
        var request = new LambdaRequest("f", "{}");
        Assert.That(Assert.ThrowsAsync<ObjectDisposedException>(() => lambda.InvokeAsync(request))!.ObjectName, Is.EqualTo("LambdaClient"));
        Assert.That(Assert.Throws<ObjectDisposedException>(() => lambda.InvokeAllAsync([request, request]))!.ObjectName, Is.EqualTo("LambdaClient"));
        Assert.Throws<ObjectDisposedException>(() => lambda.InvokeAllSettledAsync([request]));
        Assert.Throws<ObjectDisposedException>(() => lambda.InvokeEachAsync([request]));
        Assert.That(Assert.ThrowsAsync<ObjectDisposedException>(() => lambda.InvokeWithResponseStreamAsync(request))!.ObjectName, Is.EqualTo("LambdaClient"));
        await Task.CompletedTask;
        Assert.That(server.Requests, Is.Empty);
    }

    // A fan-out is one call: made before Dispose, it goes on to its end, every request sent.
    [Test]
    public async Task AFanOutUnderWayWhenDisposeComesFinishesAndEveryWayInIsRefusedAfter()
    {
        var release = new TaskCompletionSource();
        await using var server = new FakeHttpServer(async _ => { await release.Task; return new Reply(200, "{}", "application/x-amz-json-1.0"); });
        var client = new AwsClient(AwsService.DynamoDB, Options(server.Url));
        var requests = Enumerable.Range(0, 20).Select(_ => AwsRequest.AwsJson("DynamoDB_20120810.GetItem", "{}"));
        var all = client.SendAllAsync(requests, new AwsFanOutOptions { MaxConcurrency = 4 });
        await EventuallyAsync(() => server.Requests.Count == 4);
        client.Dispose();
        release.SetResult();
        Assert.That(await all, Has.Count.EqualTo(20));
        Assert.That(server.Requests, Has.Count.EqualTo(20));

        var one = AwsRequest.AwsJson("DynamoDB_20120810.GetItem", "{}");
        Assert.That(Assert.Throws<ObjectDisposedException>(() => client.SendAllAsync([one]))!.ObjectName, Is.EqualTo("AwsClient"));
        Assert.Throws<ObjectDisposedException>(() => client.SendAllSettledAsync([one]));
        Assert.Throws<ObjectDisposedException>(() => client.SendEachAsync([one]));
        Assert.ThrowsAsync<ObjectDisposedException>(() => client.SendStreamingAsync(one));
        Assert.That(server.Requests, Has.Count.EqualTo(20), "nothing sent after Dispose");
    }

    private sealed class NoAnswer : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult<HttpResponseMessage>(null!);
    }

    [Test]
    public void AHandlerThatReturnsNoResponseIsNamed()
    {
        using var client = new AwsClient(AwsService.DynamoDB, Options(new Uri("http://127.0.0.1:9/"), new NoAnswer()));
        var e = Assert.ThrowsAsync<InvalidOperationException>(() => client.SendAsync(AwsRequest.AwsJson("DynamoDB_20120810.GetItem", "{}")))!;
        Assert.That(e.Message, Does.Contain("The HTTP handler (AwsClientOptions.HttpHandler) returned no response message"));
    }

    private static async Task EventuallyAsync(Func<bool> condition)
    {
        for (int i = 0; i < 500 && !condition(); i++) await Task.Delay(10);
        Assert.That(condition(), "condition never became true");
    }
}
