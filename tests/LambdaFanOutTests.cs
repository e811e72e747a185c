using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.LambdaTestSupport;

namespace SigV4Lite.Tests;

/// <summary>The fan-out against the emulator: fail-fast, collect-all and as-completed; bounds, order, laziness, cancellation.</summary>
[TestFixture]
public sealed class LambdaFanOutTests : EmulatorFixture
{
    protected override void AddFunctions(LambdaEmulator emulator)
    {
        emulator.AddFunction("crash", (_, _) => throw new InvalidOperationException("boom"));
        // Waits 0-15 ms, then fails when the payload's "i" is 3 more than a multiple of 7, else echoes.
        emulator.AddFunction("jittery", async (invocation, cancellationToken) =>
        {
            await Task.Delay(Random.Shared.Next(0, 16), cancellationToken);
            using var json = JsonDocument.Parse(invocation.Payload);
            int i = json.RootElement.GetProperty("i").GetInt32();
            if (i % 7 == 3) throw new InvalidOperationException($"item {i} fails");
            return await LambdaEmulator.Echo(invocation, cancellationToken);
        });
        emulator.AddFunction("slow", async (invocation, cancellationToken) =>
        {
            await Task.Delay(20, cancellationToken);
            return await LambdaEmulator.Echo(invocation, cancellationToken);
        });
    }

    private static IEnumerable<LambdaRequest> Numbered(string function, int count)
    {
        for (int i = 0; i < count; i++)
            yield return new LambdaRequest(function, $$"""{"i":{{i}}}""");
    }

    private static string EchoOf(string function, long i) => "{\"function\":\"" + function + "\",\"payload\":{\"i\":" + i + "}}";

    // ---- fail fast ----

    // Four at once: the first three requests to arrive hang (the emulator delays them for a minute), the fourth
    // fails. The failure cancels the three (the emulator sees each end long before its minute) and no fifth starts.
    [Test]
    public async Task FailFast_CancelsTheCallsInFlight_AndStartsNoNewOne()
    {
        Emulator.Faults.DelayNext(3, TimeSpan.FromMinutes(1));
        using var client = NewClient(Emulator);
        var started = DateTime.UtcNow;

        var e = Assert.ThrowsAsync<LambdaFunctionException>(() =>
            client.InvokeAllAsync(Numbered("crash", 100), new AwsFanOutOptions { MaxConcurrency = 4 }));

        Assert.That(e!.ErrorMessage, Is.EqualTo("boom"));
        Assert.That(DateTime.UtcNow - started, Is.LessThan(TimeSpan.FromSeconds(20)));
        await EventuallyAsync(() => Emulator.Counters.InFlight == 0, "the emulator saw the cancelled calls end");
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(4));
        await Task.Delay(200);
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(4), "no call started after the failure");
    }

    [Test]
    public async Task FailFast_WithoutFailures_ReturnsEveryResponseInInputOrder()
    {
        using var client = NewClient(Emulator);
        var requests = Enumerable.Range(0, 60).Select(i => new LambdaRequest("jittery", $$"""{"i":{{i * 7}}}"""));

        var responses = await client.InvokeAllAsync(requests, new AwsFanOutOptions { MaxConcurrency = 8 });

        Assert.That(responses, Has.Count.EqualTo(60));
        for (int i = 0; i < 60; i++)
            Assert.That(responses[i].GetPayloadString(), Is.EqualTo(EchoOf("jittery", i * 7)), $"response {i}");
    }

    // ---- collect all ----

    [Test]
    public async Task CollectAll_ReturnsEveryOutcomeInInputOrder_UnderRandomLatencies()
    {
        using var client = NewClient(Emulator);

        var outcomes = await client.InvokeAllSettledAsync(Numbered("jittery", 200), new AwsFanOutOptions { MaxConcurrency = 16 });

        Assert.That(outcomes, Has.Count.EqualTo(200));
        for (int i = 0; i < 200; i++)
        {
            var outcome = outcomes[i];
            Assert.That(outcome.Index, Is.EqualTo(i));
            Assert.That(outcome.Request.FunctionName, Is.EqualTo("jittery"));
            if (i % 7 == 3)
            {
                Assert.That(outcome.Succeeded, Is.False, $"outcome {i}");
                Assert.That(outcome.Error, Is.TypeOf<LambdaFunctionException>());
                Assert.That(((LambdaFunctionException)outcome.Error!).ErrorMessage, Is.EqualTo($"item {i} fails"));
                Assert.That(() => outcome.GetResponseOrThrow(), Throws.TypeOf<LambdaFunctionException>());
            }
            else
            {
                Assert.That(outcome.Succeeded, Is.True, $"outcome {i}: {outcome.Error}");
                Assert.That(outcome.Response!.GetPayloadString(), Is.EqualTo(EchoOf("jittery", i)));
            }
        }
        Assert.That(Emulator.Counters.MaxInFlight, Is.LessThanOrEqualTo(16));
    }

    [Test]
    public async Task CollectAll_WithFunctionErrorsNotThrown_CountsThemAsResponses()
    {
        using var client = NewClient(Emulator);
        var requests = Enumerable.Range(0, 10).Select(i => new LambdaRequest(i % 2 == 0 ? "echo" : "crash", "{}") { ThrowOnFunctionError = false });

        var outcomes = await client.InvokeAllSettledAsync(requests);

        Assert.That(outcomes.All(o => o.Succeeded), Is.True);
        Assert.That(outcomes.Select(o => o.Response!.FunctionError), Is.EqualTo(Enumerable.Range(0, 10).Select(i => i % 2 == 0 ? null : "Unhandled")));
    }

    // ---- bounds ----

    [TestCase(1)]
    [TestCase(5)]
    [TestCase(12)]
    public async Task InFlight_NeverExceedsMaxConcurrency(int maxConcurrency)
    {
        using var client = NewClient(Emulator);
        var seen = new List<AwsFanOutProgress>();
        var progress = new SynchronousProgress(p => { lock (seen) seen.Add(p); });

        int count = 0;
        await foreach (var outcome in client.InvokeEachAsync(Numbered("slow", 60), new AwsFanOutOptions { MaxConcurrency = maxConcurrency, Progress = progress }))
        {
            Assert.That(outcome.Succeeded, Is.True);
            count++;
        }

        Assert.That(count, Is.EqualTo(60));
        Assert.That(Emulator.Counters.MaxInFlight, Is.LessThanOrEqualTo(maxConcurrency));
        Assert.That(Emulator.Counters.MaxInFlight, Is.EqualTo(maxConcurrency), "the bound is also reached");
        Assert.That(seen.Max(p => p.InFlight), Is.LessThanOrEqualTo(maxConcurrency));
        Assert.That(seen[^1], Is.EqualTo(new AwsFanOutProgress(60, 0, 0)), "the last report is the total");
    }

    // A million requests, made as they are read: the fan-out never reads more than MaxConcurrency ahead of the
    // outcomes the consumer took, so a consumer that stops after 40 has cost about 40 requests, not a million.
    [Test]
    public async Task Input_IsReadLazily_AtMostMaxConcurrencyAhead()
    {
        using var client = NewClient(Emulator);
        int read = 0;
        IEnumerable<LambdaRequest> Million()
        {
            for (int i = 0; i < 1_000_000; i++)
            {
                Interlocked.Increment(ref read);
                yield return new LambdaRequest("echo", "{}");
            }
        }

        int consumed = 0;
        await foreach (var outcome in client.InvokeEachAsync(Million(), new AwsFanOutOptions { MaxConcurrency = 4 }))
        {
            consumed++;
            Assert.That(Volatile.Read(ref read), Is.LessThanOrEqualTo(consumed + 4), "read ahead of the outcomes consumed");
            if (consumed == 40) break;
            if (consumed % 10 == 0) await Task.Delay(20); // a slow consumer holds back new invocations
        }

        Assert.That(Volatile.Read(ref read), Is.LessThanOrEqualTo(44));
        await EventuallyAsync(() => Emulator.Counters.InFlight == 0, "leaving the loop ended the calls in flight");
        Assert.That(Emulator.Counters.Requests, Is.LessThanOrEqualTo(44));
    }

    [Test]
    public async Task AsyncInput_IsInvokedInFull()
    {
        using var client = NewClient(Emulator);

        var outcomes = await client.InvokeAllSettledAsync(NumberedAsync(50), new AwsFanOutOptions { MaxConcurrency = 6 });

        Assert.That(outcomes.Select(o => o.Response!.GetPayloadString()),
            Is.EqualTo(Enumerable.Range(0, 50).Select(i => EchoOf("echo", i))));
    }

    private static async IAsyncEnumerable<LambdaRequest> NumberedAsync(int count, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        for (int i = 0; i < count; i++)
        {
            if (i % 10 == 0) await Task.Delay(1, cancellationToken);
            yield return new LambdaRequest("echo", $$"""{"i":{{i}}}""");
        }
    }

    [Test]
    public void InputThatThrows_StopsTheRun_AndItsExceptionIsThrown()
    {
        using var client = NewClient(Emulator);
        IEnumerable<LambdaRequest> Broken()
        {
            for (int i = 0; i < 5; i++) yield return new LambdaRequest("echo", "{}");
            throw new FormatException("line 6 of the input is not a request");
        }

        var e = Assert.ThrowsAsync<FormatException>(() => client.InvokeAllSettledAsync(Broken(), new AwsFanOutOptions { MaxConcurrency = 2 }));

        Assert.That(e!.Message, Does.Contain("line 6"));
    }

    [Test]
    public void MaxConcurrencyBelowOne_IsRefused()
    {
        using var client = NewClient(Emulator);

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => client.InvokeEachAsync(Numbered("echo", 1), new AwsFanOutOptions { MaxConcurrency = 0 }));

        Assert.That(e!.Message, Does.Contain("MaxConcurrency must be at least 1"));
    }

    // ---- cancellation ----

    [Test]
    public async Task Cancellation_StopsEverythingPromptly()
    {
        Emulator.Faults.DelayNext(1000, TimeSpan.FromMinutes(1));
        using var client = NewClient(Emulator);
        using var cancel = new CancellationTokenSource();

        var run = client.InvokeAllSettledAsync(Numbered("echo", 1000), new AwsFanOutOptions { MaxConcurrency = 8 }, cancel.Token);
        await EventuallyAsync(() => Emulator.Counters.InFlight == 8, "eight calls are in flight");
        var cancelled = DateTime.UtcNow;
        cancel.Cancel();

        Assert.That(async () => await run, Throws.InstanceOf<OperationCanceledException>());
        Assert.That(DateTime.UtcNow - cancelled, Is.LessThan(TimeSpan.FromSeconds(5)));
        await EventuallyAsync(() => Emulator.Counters.InFlight == 0, "the emulator saw every call end");
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(8));
    }

    [Test]
    public async Task LeavingTheStreamEarly_CancelsTheCallsInFlight()
    {
        Emulator.Faults.DelayNext(1, TimeSpan.Zero);
        Emulator.Faults.DelayNext(100, TimeSpan.FromMinutes(1));
        using var client = NewClient(Emulator);

        await foreach (var outcome in client.InvokeEachAsync(Numbered("echo", 100), new AwsFanOutOptions { MaxConcurrency = 5 }))
        {
            Assert.That(outcome.Succeeded, Is.True);
            break;
        }

        await EventuallyAsync(() => Emulator.Counters.InFlight == 0, "the emulator saw the calls in flight end");
        Assert.That(Emulator.Counters.Requests, Is.LessThanOrEqualTo(6));
    }

    // ---- volume ----

    [Test]
    public async Task TenThousandInvocations_NoneLostNorDuplicated()
    {
        const int count = 10_000;
        using var client = NewClient(Emulator);
        var seen = new int[count];
        long failed = 0;

        await foreach (var outcome in client.InvokeEachAsync(Numbered("echo", count), new AwsFanOutOptions { MaxConcurrency = 64 }))
        {
            if (!outcome.Succeeded) { failed++; continue; }
            seen[outcome.Index]++;
            var payload = outcome.Response.Payload.Span;
            var expected = Encoding.UTF8.GetBytes("{\"i\":" + outcome.Index + "}}");
            if (!payload.EndsWith(expected)) Assert.Fail($"outcome {outcome.Index} carries another payload: {outcome.Response.GetPayloadString()}");
        }

        Assert.That(failed, Is.Zero);
        Assert.That(seen.Count(n => n != 1), Is.Zero, "every index exactly once");
        Assert.That(Emulator.Counters.Requests, Is.EqualTo(count));
        Assert.That(Emulator.Counters.MaxInFlight, Is.LessThanOrEqualTo(64));
    }

    // Reports on the reporting thread (Progress<T> would post them later to the thread pool).
    private sealed class SynchronousProgress(Action<AwsFanOutProgress> report) : IProgress<AwsFanOutProgress>
    {
        public void Report(AwsFanOutProgress value) => report(value);
    }
}
