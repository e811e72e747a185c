using System.Diagnostics;
using NUnit.Framework;

namespace SigV4Lite.Tests;

// An attempt's deadline with the system clock is a pooled slot whose timer is armed only when it would not fire by the
// deadline: a timer that fires early must arm itself for the rest, one that fires between attempts must rest and be armed
// by the next attempt, and an expiry must never reach the attempt that reuses the slot. Real time: deadlines are counted
// on Environment.TickCount64 (a tick of 4 ms here, up to 16 ms elsewhere), so a bound measured with a Stopwatch keeps a
// margin of several ticks, and an exact bound is measured on TickCount64 itself.
public class AttemptDeadlineTests
{
    // When the token is cancelled, measured from now; a failure if not within the limit.
    private static async Task<TimeSpan> CancelledAfter(CancellationToken token, TimeSpan limit)
    {
        var started = Stopwatch.StartNew();
        var cancelled = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = token.Register(() => cancelled.TrySetResult(started.Elapsed));
        var first = await Task.WhenAny(cancelled.Task, Task.Delay(limit));
        Assert.That(first, Is.SameAs(cancelled.Task), $"The deadline did not expire within {limit.TotalMilliseconds} ms.");
        return await cancelled.Task;
    }

    [Test]
    public async Task A_timer_that_fires_at_an_earlier_attempts_deadline_arms_itself_for_the_rest()
    {
        var earlier = AttemptDeadline.Rent(TimeSpan.FromMilliseconds(300));
        earlier.End(); // its timer stays armed for 300 ms from now
        Thread.Sleep(150);
        var later = AttemptDeadline.Rent(TimeSpan.FromMilliseconds(300)); // same thread: the same slot, due 150 ms after the timer
        Assert.That(later, Is.SameAs(earlier), "The slot a thread gave back is the one it takes next.");
        var elapsed = await CancelledAfter(later.Token, TimeSpan.FromSeconds(5));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(225)), // the early fire would come at about 150
            "The attempt was cancelled when the timer fired for the earlier attempt's deadline, before its own.");
        Assert.That(later.IsCancellationRequested, Is.True);
        later.End();
    }

    [Test]
    public async Task A_timer_that_fired_between_attempts_is_armed_by_the_next_one()
    {
        var earlier = AttemptDeadline.Rent(TimeSpan.FromMilliseconds(40));
        earlier.End();
        Thread.Sleep(200); // the timer fires with no attempt running, and rests
        var later = AttemptDeadline.Rent(TimeSpan.FromMilliseconds(150));
        Assert.That(later, Is.SameAs(earlier));
        Assert.That(later.IsCancellationRequested, Is.False, "An expiry between attempts reached the slot.");
        var elapsed = await CancelledAfter(later.Token, TimeSpan.FromSeconds(5));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(100)));
        later.End();
    }

    [Test]
    public async Task A_slot_whose_attempt_expired_or_was_cancelled_comes_back_with_a_fresh_token()
    {
        var expired = AttemptDeadline.Rent(TimeSpan.FromMilliseconds(30));
        await CancelledAfter(expired.Token, TimeSpan.FromSeconds(5));
        var spent = expired.Token;
        var occupying = AttemptDeadline.Rent(TimeSpan.FromSeconds(30)); // takes this thread's spare, if it has one
        expired.End();
        var next = AttemptDeadline.Rent(TimeSpan.FromSeconds(30));
        Assert.That(next, Is.SameAs(expired), "The slot a thread gave back is the one it takes next.");
        Assert.That(next.IsCancellationRequested, Is.False);
        Assert.That(next.Token, Is.Not.EqualTo(spent));

        using var caller = new CancellationTokenSource();
        next.Link(caller.Token);
        caller.Cancel();
        Assert.That(next.IsCancellationRequested, Is.True, "The caller's cancellation reaches the attempt's token.");
        next.End();
        var after = AttemptDeadline.Rent(TimeSpan.FromSeconds(30));
        Assert.That(after, Is.SameAs(next));
        Assert.That(after.IsCancellationRequested, Is.False);
        after.End();
        occupying.End();
    }

    // Many attempts on shared slots, their deadlines expiring while others end and reuse slots: no attempt may be
    // cancelled before its own deadline (an expiry that reached the attempt reusing a slot would be), and every attempt
    // held past its deadline is cancelled.
    [Test]
    public async Task No_attempt_is_cancelled_before_its_own_deadline_when_slots_are_reused()
    {
        var early = 0;
        var missed = 0;
        await Parallel.ForAsync(0, 600, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, _) =>
        {
            var random = new Random(i);
            for (int attempt = 0; attempt < 4; attempt++)
            {
                var timeout = TimeSpan.FromMilliseconds(random.Next(5, 40));
                // Most attempts end around their deadline; some are held far past it, and must have been cancelled.
                bool heldPast = i % 10 == 0 && attempt == 3;
                var hold = heldPast ? timeout + TimeSpan.FromMilliseconds(300) : TimeSpan.FromMilliseconds(random.Next(0, 60));
                // On the clock the deadline is counted on, an expiry can come no earlier than the whole timeout.
                long rented = Environment.TickCount64;
                var deadline = AttemptDeadline.Rent(timeout);
                long cancelledAt = long.MaxValue;
                using (deadline.Token.Register(() => Volatile.Write(ref cancelledAt, Environment.TickCount64)))
                {
                    await Task.Delay(hold);
                    if (Volatile.Read(ref cancelledAt) - rented < (long)timeout.TotalMilliseconds) Interlocked.Increment(ref early);
                    if (heldPast && !deadline.IsCancellationRequested) Interlocked.Increment(ref missed);
                }
                deadline.End();
            }
        });
        Assert.That(early, Is.Zero, "attempts cancelled before their deadline");
        Assert.That(missed, Is.Zero, "attempts held 300 ms past their deadline and not cancelled");
    }

    // The caller cancels on another thread while the attempt ends: End waits for the cancellation in progress, so the
    // slot never goes back with a source about to be cancelled, and the next attempt on it starts uncancelled.
    [Test]
    public void A_caller_cancelling_while_the_attempt_ends_never_reaches_the_next_attempt()
    {
        int reached = 0, cancelledFirst = 0;
        var random = new Random(7);
        for (int i = 0; i < 2_000; i++)
        {
            using var caller = new CancellationTokenSource();
            var deadline = AttemptDeadline.Rent(TimeSpan.FromSeconds(30));
            deadline.Link(caller.Token);
            using var started = new ManualResetEventSlim();
            int theirs = random.Next(0, 400), ours = random.Next(0, 400); // spins: either may come first, or both at once
            var cancelling = Task.Run(() => { started.Set(); Thread.SpinWait(theirs); caller.Cancel(); });
            started.Wait();
            Thread.SpinWait(ours);
            if (deadline.IsCancellationRequested) cancelledFirst++;
            deadline.End();
            var next = AttemptDeadline.Rent(TimeSpan.FromSeconds(30)); // this thread's spare: the slot just ended
            cancelling.Wait();
            if (next.IsCancellationRequested) reached++;
            next.End();
        }
        Assert.That(cancelledFirst, Is.GreaterThan(0), "the caller never cancelled before the attempt ended: the race was not run");
        Assert.That(reached, Is.Zero, "attempts that started with a token the previous attempt's caller cancelled");
    }

    private sealed class Hanging : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            await Task.Delay(TimeSpan.FromSeconds(10), cancellationToken); // answers, late, if no deadline cancels it
            return new HttpResponseMessage(System.Net.HttpStatusCode.OK) { RequestMessage = request, Content = new StringContent("{}") };
        }
    }

    // With a clock other than the system's, an attempt's deadline is that clock's timer (not a pooled slot): a hanging
    // answer still times out, as an AwsTimeoutException, after the timeout and not before.
    [TestCase(false)]
    [TestCase(true)]
    public void A_hanging_attempt_times_out_on_the_clients_clock(bool otherClock)
    {
        using var client = new LambdaClient(new AwsClientOptions
        {
            Endpoint = new Uri("https://lambda.us-east-1.amazonaws.com"), Region = "us-east-1",
            Credentials = new AwsCredentials("AKIDEXAMPLE", "secret"), HttpHandler = new Hanging(), MaxAttempts = 1,
            Timeout = TimeSpan.FromMilliseconds(150), Clock = otherClock ? new OffsetClock(TimeSpan.Zero) : TimeProvider.System,
        });
        var watch = Stopwatch.StartNew();
        var e = Assert.ThrowsAsync<AwsTimeoutException>(() => client.InvokeAsync(new LambdaRequest("f", "{}")))!;
        Assert.That(watch.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(100)).And.LessThan(TimeSpan.FromSeconds(10)));
        Assert.That(e.Timeout, Is.EqualTo(TimeSpan.FromMilliseconds(150)));
        Assert.That(e.Message, Does.Contain("timed out"));
    }
}
