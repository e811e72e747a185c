using System.Net;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.EmulatorTestSupport;

namespace SigV4Lite.Tests;

/// <summary>Counters under concurrent calls, and a function's reserved concurrency.</summary>
public class EmulatorConcurrencyTests
{
    [Test]
    public async Task CountsRequestsInFlightAndTheMostAtOnce()
    {
        const int calls = 8;
        await using var emulator = await LambdaEmulator.StartAsync();
        int arrived = 0;
        var allIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        emulator.AddFunction("slow", async (_, cancellationToken) =>
        {
            if (Interlocked.Increment(ref arrived) == calls) allIn.SetResult();
            await allIn.Task.WaitAsync(cancellationToken); // every call waits until all are running at once
            return "{}"u8.ToArray();
        });
        using var client = SignedClient(emulator);
        using (var unsigned = await UnsignedClient(emulator).SendAsync(Invoke("slow")))
            Assert.That(unsigned.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(emulator.Counters.SignatureFailures, Is.EqualTo(1));

        var responses = await Task.WhenAll(Enumerable.Range(0, calls).Select(_ => client.SendAsync(Invoke("slow")))).WaitAsync(Patience);

        Assert.That(responses.Select(r => r.StatusCode), Has.All.EqualTo(HttpStatusCode.OK));
        Assert.That(emulator.Counters.Requests, Is.EqualTo(calls + 1));
        Assert.That(emulator.Counters.MaxInFlight, Is.EqualTo(calls));
        await EmulatorFaultTests.WaitUntilAsync(() => emulator.Counters.InFlight == 0);

        emulator.Counters.Reset();
        Assert.That(emulator.Counters.Requests, Is.Zero);
        Assert.That(emulator.Counters.SignatureFailures, Is.Zero);
        Assert.That(emulator.Counters.MaxInFlight, Is.Zero);
        using (var one = await client.SendAsync(Invoke("slow")))
            Assert.That(one.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(emulator.Counters.Requests, Is.EqualTo(1));
        Assert.That(emulator.Counters.MaxInFlight, Is.EqualTo(1));
        foreach (var response in responses) response.Dispose();
    }

    [Test]
    public async Task ThrottlesCallsBeyondAFunctionsConcurrencyLimitWith429()
    {
        await using var emulator = await LambdaEmulator.StartAsync();
        var started = new SemaphoreSlim(0);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int runs = 0;
        emulator.AddFunction("reserved", async (_, cancellationToken) =>
        {
            Interlocked.Increment(ref runs);
            started.Release();
            await release.Task.WaitAsync(cancellationToken);
            return "{}"u8.ToArray();
        }, concurrencyLimit: 2);
        emulator.AddFunction("unlimited", LambdaEmulator.Echo);
        using var client = SignedClient(emulator);

        var first = client.SendAsync(Invoke("reserved"));
        var second = client.SendAsync(Invoke("reserved"));
        Assert.That(await started.WaitAsync(Patience) && await started.WaitAsync(Patience), Is.True, "two calls are running");

        using (var third = await client.SendAsync(Invoke("reserved")))
        {
            string message = await AssertAwsErrorAsync(third, HttpStatusCode.TooManyRequests, "TooManyRequestsException",
                reason: "ReservedFunctionConcurrentInvocationLimitExceeded");
            Assert.That(message, Is.EqualTo("Rate Exceeded."));
            Assert.That(Header(third, "X-Amz-Executed-Version"), Is.Null);
        }
        Assert.That(runs, Is.EqualTo(2), "a throttled call does not run");
        using (var other = await client.SendAsync(Invoke("unlimited")))
            Assert.That(other.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the limit is the function's own");
        using (var background = await client.SendAsync(Invoke("unlimited", invocationType: "DryRun")))
            Assert.That(background.StatusCode, Is.EqualTo(HttpStatusCode.NoContent));

        release.SetResult();
        using (var a = await first) Assert.That(a.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using (var b = await second) Assert.That(b.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using (var after = await client.SendAsync(Invoke("reserved")))
            Assert.That(after.StatusCode, Is.EqualTo(HttpStatusCode.OK), "slots are given back when calls end");
    }

    [Test]
    public async Task ThrottlesEverySynchronousCallUnderAZeroLimit()
    {
        await using var emulator = await LambdaEmulator.StartAsync();
        var function = new RecordingFunction();
        emulator.AddFunction("disabled", function.Handle, concurrencyLimit: 0);
        using var client = SignedClient(emulator);
        using var response = await client.SendAsync(Invoke("disabled"));
        await AssertAwsErrorAsync(response, HttpStatusCode.TooManyRequests, "TooManyRequestsException",
            reason: "ReservedFunctionConcurrentInvocationLimitExceeded");
        Assert.That(function.Calls, Is.Empty);
    }

    [Test]
    public async Task CancelsASynchronousFunctionsTokenWhenItsCallerGivesUp()
    {
        await using var emulator = await LambdaEmulator.StartAsync();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        emulator.AddFunction("slow", async (_, cancellationToken) =>
        {
            using var registration = cancellationToken.Register(() => cancelled.TrySetResult());
            started.SetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return "{}"u8.ToArray();
        });
        using var client = SignedClient(emulator);
        using var caller = new CancellationTokenSource();

        var call = client.SendAsync(Invoke("slow"), caller.Token);
        await started.Task.WaitAsync(Patience);
        Assert.That(cancelled.Task.IsCompleted, Is.False, "the token holds while the caller waits");
        caller.Cancel();

        Assert.ThrowsAsync<TaskCanceledException>(() => call);
        await cancelled.Task.WaitAsync(Patience);
        await EmulatorFaultTests.WaitUntilAsync(() => emulator.Counters.InFlight == 0);
        emulator.AddFunction("slow", LambdaEmulator.Echo);
        using var next = await client.SendAsync(Invoke("slow"));
        Assert.That(next.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the emulator serves on");
    }

    [Test]
    public async Task KeepsAnEventFunctionsTokenAfterItsCallerLeaves()
    {
        await using var emulator = await LambdaEmulator.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelledAtEnd = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        emulator.AddFunction("queued", async (_, cancellationToken) =>
        {
            await release.Task.WaitAsync(Patience);
            cancelledAtEnd.SetResult(cancellationToken.IsCancellationRequested);
            return "{}"u8.ToArray();
        });
        using (var client = SignedClient(emulator)) // disposing it closes its connection
        using (var response = await client.SendAsync(Invoke("queued", invocationType: "Event")))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        await EmulatorFaultTests.WaitUntilAsync(() => emulator.Counters.InFlight == 0); // its request is over

        release.SetResult();
        Assert.That(await cancelledAtEnd.Task.WaitAsync(Patience), Is.False);
    }

    [Test]
    public async Task CancelsRunningFunctionsAndWaitsForBackgroundRunsWhenDisposed()
    {
        var emulator = await LambdaEmulator.StartAsync();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bool cancelled = false;
        emulator.AddFunction("forever", async (_, cancellationToken) =>
        {
            started.SetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                cancelled = true;
                throw;
            }
            return [];
        });
        using (var client = SignedClient(emulator))
        using (var response = await client.SendAsync(Invoke("forever", invocationType: "Event")))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        await started.Task.WaitAsync(Patience);

        await emulator.DisposeAsync().AsTask().WaitAsync(Patience);
        Assert.That(cancelled, Is.True);
        await emulator.DisposeAsync(); // twice is harmless
    }
}
