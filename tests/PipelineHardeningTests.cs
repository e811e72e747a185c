using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SigV4Lite.Tests;

// The pipeline against servers and inputs that misbehave on purpose.
public class PipelineHardeningTests
{
    private static AwsRequest GetItem() => AwsRequest.AwsJson("DynamoDB_20120810.GetItem", """{"TableName":"t"}""");

    private static AwsClient Client(Uri endpoint, IAwsCredentialsProvider? credentials = null, TimeSpan? timeout = null, long? maxResponseSize = null) =>
        new(AwsService.DynamoDB, new AwsClientOptions
        {
            Region = "us-east-1",
            Endpoint = endpoint,
            Credentials = credentials ?? FakeAwsService.Credentials,
            RetryBaseDelay = TimeSpan.FromMilliseconds(1),
            Timeout = timeout,
            MaxResponseSize = maxResponseSize,
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });

    [Test]
    public async Task AServersDateAloneNeverMovesTheClientsClock()
    {
        // Every answer is a skew error with a Date a year ahead: the retry signed a year ahead fails too.
        await using var liar = new FakeHttpServer(_ => new Reply(403, """{"__type":"InvalidSignatureException","message":"Signature expired: 20260101T000000Z is now earlier than ..."}""")
        {
            Headers = [new("Date", DateTimeOffset.UtcNow.AddYears(1).ToString("r"))],
        });
        using var client = Client(liar.Url);

        var e = Assert.ThrowsAsync<AwsServiceException>(() => client.SendAsync(GetItem()))!;

        Assert.That(e.ErrorCode, Is.EqualTo("InvalidSignatureException"));
        Assert.That(client.Retry.ClockOffset, Is.EqualTo(TimeSpan.Zero), "no request signed with the server's time succeeded");
        Assert.That(liar.Requests, Has.Count.EqualTo(2), "one retry with the corrected time, then the error");
        var dates = liar.Requests.Select(r => r.Header("X-Amz-Date")!).ToList();
        Assert.That(dates[1][..4], Is.EqualTo((DateTime.UtcNow.Year + 1).ToString()), "the retry was signed on the server's time");
    }

    private sealed class NeverAnswering : IAwsCredentialsProvider
    {
        public ValueTask<AwsCredentials> GetCredentialsAsync(CancellationToken cancellationToken = default) =>
            new(Task.Delay(Timeout.Infinite, cancellationToken).ContinueWith(_ => FakeAwsService.Credentials, TaskScheduler.Default));
    }

    [Test]
    public async Task TheTimeoutCoversGettingCredentials()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json("{}"));
        using var client = Client(server.Url, new NeverAnswering(), timeout: TimeSpan.FromMilliseconds(200));

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.ThrowsAsync<AwsTimeoutException>(() => client.SendAsync(GetItem()))!;

        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
        Assert.That(e.Message, Does.Contain("getting credentials took longer than 00:00:00.2"));
        Assert.That(server.Requests, Is.Empty);
    }

    [Test]
    public async Task ACancelledFanOutDoesNotWaitForAnInputBlockedInMoveNext()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json("{}"));
        using var client = Client(server.Url);
        using var release = new ManualResetEventSlim();
        IEnumerable<AwsRequest> Blocking()
        {
            yield return GetItem();
            release.Wait(); // ignores any cancellation
            yield return GetItem();
        }
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var watch = System.Diagnostics.Stopwatch.StartNew();

        Assert.That(() => client.SendAllAsync(Blocking(), cancellationToken: cancel.Token), Throws.InstanceOf<OperationCanceledException>());

        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "cancellation returned without the blocked read");
        release.Set();
    }

    [Test]
    public async Task ACancelledFanOutDoesNotWaitForAnAsyncInputThatIgnoresCancellation()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json("{}"));
        using var client = Client(server.Url);
        var disposed = new TaskCompletionSource();
        async IAsyncEnumerable<AwsRequest> Stubborn()
        {
            try
            {
                yield return GetItem();
                await Task.Delay(TimeSpan.FromSeconds(3)); // no token
                yield return GetItem();
            }
            finally { disposed.TrySetResult(); }
        }
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var watch = System.Diagnostics.Stopwatch.StartNew();

        Assert.That(() => client.SendAllSettledAsync(Stubborn(), cancellationToken: cancel.Token), Throws.InstanceOf<OperationCanceledException>());

        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)));
        Assert.That(await Task.WhenAny(disposed.Task, Task.Delay(TimeSpan.FromSeconds(10))), Is.SameAs(disposed.Task),
            "the input is disposed once the abandoned read returns");
    }

    // A server that answers 200 with a declared length and then sends nothing (or an endless chunked body).
    private sealed class LyingServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();

        public LyingServer(string head, bool endlessChunks = false)
        {
            _listener.Start(512);
            Url = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
            _ = AcceptAsync(head, endlessChunks);
        }

        public Uri Url { get; }
        public int Connections;

        private async Task AcceptAsync(string head, bool endlessChunks)
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    Interlocked.Increment(ref Connections);
                    _ = ServeAsync(client, head, endlessChunks);
                }
            }
            catch (Exception) when (_stop.IsCancellationRequested) { }
        }

        private async Task ServeAsync(TcpClient client, string head, bool endlessChunks)
        {
            using var _ = client;
            try
            {
                var stream = client.GetStream();
                // The server's own allocations count in the test's measure: keep them small.
                var buffer = new byte[4096];
                await stream.ReadAsync(buffer, _stop.Token); // the request (small)
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), _stop.Token);
                if (endlessChunks)
                {
                    var chunk = Encoding.ASCII.GetBytes("10000\r\n" + new string('x', 0x10000) + "\r\n");
                    while (true) await stream.WriteAsync(chunk, _stop.Token);
                }
                await Task.Delay(Timeout.Infinite, _stop.Token); // silence
            }
            catch (Exception) { }
        }

        public ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            return default;
        }
    }

    [Test]
    public async Task A128WayFanOutAgainstAServerDeclaring15GBAnswersAllocatesNothingLikeIt()
    {
        await using var server = new LyingServer("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1500000000\r\n\r\n");
        using var client = new LambdaClient(new AwsClientOptions
        {
            Region = "us-east-1", Endpoint = server.Url, Credentials = FakeAwsService.Credentials,
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });
        long before = GC.GetTotalAllocatedBytes(precise: true);

        var outcomes = await client.InvokeAllSettledAsync(Enumerable.Range(0, 256).Select(_ => new LambdaRequest("f", "{}")), new AwsFanOutOptions { MaxConcurrency = 128 });

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.That(outcomes.Select(o => o.Error), Is.All.InstanceOf<AwsResponseTooLargeException>());
        Assert.That(((AwsResponseTooLargeException)outcomes[0].Error!).Limit, Is.EqualTo(LambdaClient.MaxResponseSize));
        Assert.That(allocated, Is.LessThan(100L * 1024 * 1024), $"{allocated / 1024 / 1024} MB allocated");
        Assert.That(server.Connections, Is.EqualTo(256), "a declared length over the limit is not retried");
    }

    [Test]
    public async Task AnEndlessChunkedAnswerIsCutAtTheLimit()
    {
        await using var server = new LyingServer("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", endlessChunks: true);
        using var client = Client(server.Url, maxResponseSize: 1024 * 1024);
        long before = GC.GetTotalAllocatedBytes(precise: true);

        var e = Assert.ThrowsAsync<AwsResponseTooLargeException>(() => client.SendAsync(GetItem()))!;

        Assert.That(e.Limit, Is.EqualTo(1024 * 1024));
        Assert.That(e.Message, Does.Contain("more than 1048576 bytes").And.Not.Contain("declared"));
        Assert.That(GC.GetTotalAllocatedBytes(precise: true) - before, Is.LessThan(16L * 1024 * 1024));
    }

    [Test]
    public async Task AHeadAnswersContentLengthDescribesTheObjectNotABody()
    {
        await using var server = new LyingServer("HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\nETag: \"abc\"\r\n\r\n");
        using var client = Client(server.Url, maxResponseSize: 1024);

        var response = await client.SendAsync(new AwsRequest(HttpMethod.Head, "/bucket/key") { OperationName = "HeadObject" });

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Body.Length, Is.Zero);
        Assert.That(response.GetHeader("Content-Length"), Is.EqualTo("104857600"));
        Assert.That(response.GetHeader("ETag"), Is.EqualTo("\"abc\""));
    }

    [Test]
    public async Task AProgressListenerThatThrowsLosesNoOutcomeAndStopsNothing()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json("{}"));
        using var client = Client(server.Url);
        var progress = new Throwing();

        var outcomes = await client.SendAllSettledAsync(Enumerable.Range(0, 20).Select(_ => GetItem()), new AwsFanOutOptions { MaxConcurrency = 4, Progress = progress })
            .WaitAsync(TimeSpan.FromSeconds(20));

        Assert.That(outcomes, Has.Count.EqualTo(20));
        Assert.That(outcomes.All(o => o.Succeeded), Is.True);
        Assert.That(progress.Reports, Is.GreaterThanOrEqualTo(20));
    }

    private sealed class Throwing : IProgress<AwsFanOutProgress>
    {
        public int Reports;
        public void Report(AwsFanOutProgress value)
        {
            if (Interlocked.Increment(ref Reports) % 2 == 0) throw new InvalidOperationException("listener bug");
        }
    }

    [Test]
    public async Task EachEnumerationOfAStreamingFanOutIsANewRun()
    {
        await using var server = new FakeHttpServer(_ => Reply.Json("{}"));
        using var client = Client(server.Url);
        var requests = Enumerable.Range(0, 10).Select(_ => GetItem()).ToList();
        var each = client.SendEachAsync(requests);

        int first = 0, second = 0;
        await foreach (var _ in each) if (++first == 3) break;
        await foreach (var _ in each) second++;

        Assert.That(first, Is.EqualTo(3));
        Assert.That(second, Is.EqualTo(10), "the second enumeration read the input from its start");
    }

    [Test]
    public async Task TheCallersCancellationCarriesTheCallersToken()
    {
        await using var slow = new FakeHttpServer(async _ => { await Task.Delay(3000); return Reply.Json("{}"); });
        using var client = Client(slow.Url);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var e = Assert.CatchAsync<OperationCanceledException>(() => client.SendAsync(GetItem(), cancel.Token))!;

        Assert.That(e.CancellationToken, Is.EqualTo(cancel.Token));
    }

    [Test]
    public async Task MaxAttemptsOfOneMeansNoRetryInAFanOutToo()
    {
        int calls = 0;
        await using var server = new FakeHttpServer(_ => Interlocked.Increment(ref calls) == 1
            ? new Reply(429, """{"message":"Rate exceeded"}""") { Headers = [new("x-amzn-ErrorType", "ThrottlingException")] }
            : Reply.Json("{}"));
        using var client = new AwsClient(AwsService.DynamoDB, new AwsClientOptions
        {
            Region = "us-east-1", Endpoint = server.Url, Credentials = FakeAwsService.Credentials, MaxAttempts = 1,
            Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
        });

        var outcomes = await client.SendAllSettledAsync(Enumerable.Range(0, 10).Select(_ => GetItem()), new AwsFanOutOptions { MaxConcurrency = 1 });

        Assert.That(outcomes.Count(o => !o.Succeeded), Is.EqualTo(1));
        Assert.That(calls, Is.EqualTo(10));
    }

    [Test]
    public async Task AStreamingAnswerDoesNotCarryTheSignedRequest()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSION-TOKEN-SECRET");
        await using var server = new FakeHttpServer(_ => Reply.Json("{}"));
        using var client = Client(server.Url, credentials);

        using var response = await client.SendStreamingAsync(GetItem());

        Assert.That(response.RequestMessage, Is.Null);
        Assert.That(response.ToString(), Does.Not.Contain("SESSION-TOKEN-SECRET").And.Not.Contain("Signature="));
    }
}
