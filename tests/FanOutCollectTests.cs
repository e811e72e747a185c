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

    private static LambdaClient Client(int failAt) => Client(new InstantLambda(failAt));

    private static LambdaClient Client(HttpMessageHandler handler, IAwsCredentialsProvider? credentials = null, int? maxAttempts = null) => new(new AwsClientOptions
    {
        Region = "us-east-1",
        Endpoint = new Uri("http://127.0.0.1:9/"),
        Credentials = credentials ?? new AwsCredentials("AKIDEXAMPLE", "secret"),
        HttpHandler = handler,
        MaxAttempts = maxAttempts,
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

    // 3,000: the results are kept in chunks of 1,024, so this crosses two chunk boundaries.
    [Test]
    public async Task AFailFastRunWithoutFailuresReturnsEveryResponseInInputOrder()
    {
        using var client = Client(failAt: -1);
        var responses = await client.InvokeAllAsync(Requests(3_000), new AwsFanOutOptions { MaxConcurrency = 64 });
        Assert.That(responses, Has.Count.EqualTo(3_000));
        Assert.That(responses.Select(r => r.GetPayloadString()), Is.EqualTo(Enumerable.Range(0, 3_000).Select(i => $"\"f{i}\"")));
        Assert.That(Enumerable.Range(0, 3_000).All(i => responses[i].GetPayloadString() == $"\"f{i}\""), "the indexer agrees with the enumeration");
        Assert.That(responses.ToArray().Select(r => r.GetPayloadString()), Is.EqualTo(responses.Select(r => r.GetPayloadString())), "ToArray copies every chunk");
    }

    // 1,500 outcomes: the settled results (AwsOutcome, 40 B each) cross a chunk boundary too.
    [Test]
    public async Task ASettledRunOfManyReturnsEveryOutcomeInInputOrder()
    {
        using var client = Client(failAt: 1_200);
        var outcomes = await client.InvokeAllSettledAsync(Requests(1_500), new AwsFanOutOptions { MaxConcurrency = 64 });
        Assert.That(outcomes.Select(o => o.Index), Is.EqualTo(Enumerable.Range(0, 1_500).Select(i => (long)i)));
        Assert.That(outcomes.Where(o => !o.Succeeded).Select(o => o.Index), Is.EqualTo(new long[] { 1_200 }));
        Assert.That(outcomes[1_499].Response!.GetPayloadString(), Is.EqualTo("\"f1499\""));
    }

    [Test]
    public async Task ACollectedListIsReadOnlyAndSaysSo()
    {
        using var client = Client(failAt: -1);
        var responses = await client.InvokeAllAsync(Requests(3), new AwsFanOutOptions { MaxConcurrency = 2 });
        var asList = responses as IList<LambdaResponse>;
        Assert.That(asList, Is.Not.Null, "an IList<T>, so that LINQ copies it in one go");
        Assert.That(asList!.IsReadOnly, Is.True);
        var e = Assert.Throws<NotSupportedException>(() => asList.Add(responses[0]));
        Assert.That(e!.Message, Does.Contain("read-only").And.Contain("ToList"));
        Assert.Throws<NotSupportedException>(() => asList[0] = responses[1]);
        Assert.Throws<NotSupportedException>(() => asList.RemoveAt(0));
        Assert.Throws<NotSupportedException>(() => asList.Clear());
        Assert.That(responses.Select(r => r.GetPayloadString()), Is.EqualTo(new[] { "\"f0\"", "\"f1\"", "\"f2\"" }), "unchanged");
    }

    private sealed class SlowLambda : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            await Task.Delay(TimeSpan.FromSeconds(30), cancellationToken);
            return new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new ByteArrayContent("{}"u8.ToArray()) };
        }
    }

    // MaxConcurrency = int.MaxValue reads as "no limit": a stop must wake a streaming run's waiting workers without
    // overflowing the slots' count (it threw SemaphoreFullException out of the caller's own Cancel()); a collect-all
    // run's workers take no slot, and its stop must not overflow them either.
    [Test]
    public async Task NoLimitOnConcurrencyStillStopsCleanly()
    {
        using var client = Client(new SlowLambda());
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

    // A collect-all run takes no slots: its workers, at most MaxConcurrency, are what bound the requests read ahead of
    // the answers. With every call held, exactly MaxConcurrency requests are read.
    [Test]
    public async Task ACollectAllRunReadsAtMostMaxConcurrencyAhead()
    {
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int read = 0, sent = 0;
        using var client = Client(new HeldLambda(held.Task, () => Interlocked.Increment(ref sent)));
        IEnumerable<LambdaRequest> Counted()
        {
            for (int i = 0; i < 1_000; i++)
            {
                Interlocked.Increment(ref read);
                yield return new LambdaRequest("f" + i, "{}");
            }
        }
        var all = client.InvokeAllAsync(Counted(), new AwsFanOutOptions { MaxConcurrency = 7 });
        for (int i = 0; i < 200 && Volatile.Read(ref sent) < 7; i++) await Task.Delay(10);
        await Task.Delay(100); // time for a worker too many to read another
        Assert.That((Volatile.Read(ref read), Volatile.Read(ref sent)), Is.EqualTo((7, 7)), "read ahead of the answers");
        held.SetResult();
        var responses = await all;
        Assert.That(responses.Count, Is.EqualTo(1_000));
        Assert.That(read, Is.EqualTo(1_000));
    }

    private sealed class HeldLambda(Task held, Action onSend) : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            onSend();
            await held.WaitAsync(cancellationToken);
            return new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new ByteArrayContent("{}"u8.ToArray()) };
        }
    }

    // An adaptive fan-out limited to one call at a time: every way an attempt can fail (the handler throws, answers
    // nothing, the credentials throw, the function fails) gives its place back, or the next call would wait forever.
    [Test]
    public async Task EveryFailedAttemptGivesItsPlaceBackToTheLimiter()
    {
        using var client = Client(new FailingLambda(), new EveryFifthFails(), maxAttempts: 1);
        var run = client.InvokeAllSettledAsync(Enumerable.Range(0, 60).Select(i => new LambdaRequest("f" + i, "{}")),
            new AwsFanOutOptions { MaxConcurrency = 1, AdaptiveConcurrency = true });
        Assert.That(await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(20))), Is.SameAs(run), "a failed attempt kept its place in the limiter");
        var outcomes = await run;
        Assert.That(outcomes.Count, Is.EqualTo(60));
        var failures = outcomes.Where(o => !o.Succeeded).Select(o => o.Error!.GetType()).Distinct().ToList();
        Assert.That(failures, Is.SubsetOf(new[] { typeof(InvalidOperationException), typeof(LambdaFunctionException) }));
        Assert.That(failures, Has.Count.EqualTo(2), "both kinds of failure were met");
        Assert.That(outcomes.Count(o => o.Succeeded), Is.GreaterThan(0));
    }

    private sealed class FailingLambda : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            int i = int.Parse(request.RequestUri!.AbsolutePath.Split('/')[3][1..]);
            if (i % 3 == 1) throw new InvalidOperationException("the handler failed");
            if (i % 3 == 2) return Task.FromResult<HttpResponseMessage>(null!);
            var response = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new ByteArrayContent("{}"u8.ToArray()) };
            if (i % 4 == 0) response.Headers.TryAddWithoutValidation("X-Amz-Function-Error", "Unhandled");
            return Task.FromResult(response);
        }
    }

    private sealed class EveryFifthFails : IAwsCredentialsProvider
    {
        private int _calls;

        public ValueTask<AwsCredentials> GetCredentialsAsync(CancellationToken cancellationToken = default) =>
            Interlocked.Increment(ref _calls) % 5 == 0 ? throw new InvalidOperationException("no credentials") : new(new AwsCredentials("AKIDEXAMPLE", "secret"));
    }
}
