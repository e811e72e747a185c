using System.Net;
using System.Text;
using NUnit.Framework;

namespace SigV4Lite.Tests;

// Collect-all fan-outs place each outcome from the worker that made it (no channel). These races are the ones that
// placement must win: the failure that stops a fail-fast run is thrown, never a list with holes; a settled run
// returns every outcome. In-process answers, so that hundreds of runs take well under a second each.
public class FanOutCollectTests
{
    private sealed class InstantLambda(int failAt) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            string name = request.RequestUri!.AbsolutePath.Split('/')[3];
            var response = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new ByteArrayContent(Encoding.UTF8.GetBytes($"\"{name}\"")) };
            if (name == "f" + failAt) response.Headers.TryAddWithoutValidation("X-Amz-Function-Error", "Unhandled");
            return Task.FromResult(response);
        }
    }

    private static LambdaClient Client(int failAt) => new(new AwsClientOptions
    {
        Region = "us-east-1",
        Endpoint = new Uri("http://127.0.0.1:9/"),
        Credentials = new AwsCredentials("AKIDEXAMPLE", "secret"),
        HttpHandler = new InstantLambda(failAt),
        Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
    });

    private static IEnumerable<LambdaRequest> Requests(int count) => Enumerable.Range(0, count).Select(i => new LambdaRequest("f" + i, "{}"));

    [Test]
    public void AFailFastRunAlwaysThrowsItsFailureNeverAListWithHoles()
    {
        for (int round = 0; round < 300; round++)
        {
            using var client = Client(failAt: round % 40);
            var e = Assert.ThrowsAsync<LambdaFunctionException>(() => client.InvokeAllAsync(Requests(40), new AwsFanOutOptions { MaxConcurrency = 8 }),
                $"round {round}");
            Assert.That(e!.Response.FunctionName, Is.EqualTo("f" + round % 40));
        }
    }

    [Test]
    public async Task ASettledRunReturnsEveryOutcomeInInputOrder()
    {
        for (int round = 0; round < 100; round++)
        {
            using var client = Client(failAt: round % 40);
            var outcomes = await client.InvokeAllSettledAsync(Requests(40), new AwsFanOutOptions { MaxConcurrency = 8 });
            Assert.That(outcomes.Select(o => o.Index), Is.EqualTo(Enumerable.Range(0, 40).Select(i => (long)i)), $"round {round}");
            Assert.That(outcomes.Where(o => !o.Succeeded).Select(o => o.Index), Is.EqualTo(new long[] { round % 40 }), $"round {round}");
            Assert.That(outcomes.Where(o => o.Succeeded).All(o => o.Response!.GetPayloadString() == $"\"f{o.Index}\""), $"round {round}");
        }
    }

    [Test]
    public async Task AFailFastRunWithoutFailuresReturnsEveryResponseInInputOrder()
    {
        using var client = Client(failAt: -1);
        var responses = await client.InvokeAllAsync(Requests(1_000), new AwsFanOutOptions { MaxConcurrency = 64 });
        Assert.That(responses.Select(r => r.GetPayloadString()), Is.EqualTo(Enumerable.Range(0, 1_000).Select(i => $"\"f{i}\"")));
    }

    private sealed class SlowLambda : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            await Task.Delay(TimeSpan.FromSeconds(30), cancellationToken);
            return new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new ByteArrayContent("{}"u8.ToArray()) };
        }
    }

    // MaxConcurrency = int.MaxValue reads as "no limit": a stop must wake the waiting workers without overflowing the
    // slots' count (it threw SemaphoreFullException out of the caller's own Cancel()).
    [Test]
    public async Task NoLimitOnConcurrencyStillStopsCleanly()
    {
        using var client = new LambdaClient(new AwsClientOptions
        {
            Region = "us-east-1",
            Endpoint = new Uri("http://127.0.0.1:9/"),
            Credentials = new AwsCredentials("AKIDEXAMPLE", "secret"),
            HttpHandler = new SlowLambda(),
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });
        using var cancel = new CancellationTokenSource();
        var options = new AwsFanOutOptions { MaxConcurrency = int.MaxValue };
        var all = client.InvokeAllAsync(Requests(20), options, cancel.Token);
        await Task.Delay(100);
        Assert.DoesNotThrow(cancel.Cancel);
        Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), () => all);

        int seen = 0;
        using var stop = new CancellationTokenSource();
        var each = Task.Run(async () =>
        {
            await foreach (var _ in client.InvokeEachAsync(Requests(20), options, stop.Token)) seen++;
        });
        await Task.Delay(100);
        Assert.DoesNotThrow(stop.Cancel);
        Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), () => each);
        Assert.That(seen, Is.EqualTo(0));
    }
}
