using System;
using System.Collections.Generic;
using System.Threading;

namespace SigV4Lite.Emulator;

/// <summary>
/// Fault injection. Each <c>...Next</c> call queues a fault for the next <c>count</c> invocation requests, after
/// the faults queued before it: <c>FailNext(2, ...)</c> then <c>DelayNext(1, ...)</c> fails two requests and delays
/// the third. Only requests that reach the function count: a request refused for its signature or its path takes
/// no fault. <see cref="FailFraction"/> applies to the requests no queued fault took. Thread-safe.
/// </summary>
public sealed class EmulatorFaults
{
    private readonly object _lock = new();
    private readonly Queue<Fault> _queue = new();
    private Fault? _fractionFault;
    private double _fraction;
    private double _accumulated;
    private volatile bool _armed; // lets the request path skip the lock while no fault is set

    internal EmulatorFaults() { }

    /// <summary>The next <paramref name="count"/> invocation requests answer <paramref name="status"/> with
    /// <c>x-amzn-ErrorType: <paramref name="errorType"/></c> (e.g. 500 ServiceException, 502
    /// ResourceNotReadyException, 503 ServiceUnavailableException) without running the function.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The count is below 1 or the status is not 400-599.</exception>
    /// <exception cref="ArgumentException">The error type is empty or not a plain name.</exception>
    public void FailNext(int count, int status, string errorType) =>
        Enqueue(count, Fault.Failure(CheckStatus(status), CheckErrorType(errorType)));

    /// <summary>The next <paramref name="count"/> invocation requests answer 429 TooManyRequestsException with
    /// <paramref name="reason"/> (and <c>Retry-After</c> in whole seconds when <paramref name="retryAfter"/> is given),
    /// without running the function.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The count is below 1 or <paramref name="retryAfter"/> is negative.</exception>
    /// <exception cref="ArgumentException">The reason is empty.</exception>
    public void ThrottleNext(int count, string reason = "ConcurrentInvocationLimitExceeded", TimeSpan? retryAfter = null)
    {
        if (string.IsNullOrWhiteSpace(reason))
            throw new ArgumentException("The throttling reason must not be empty; give one of Lambda's, such as ConcurrentInvocationLimitExceeded.", nameof(reason));
        if (retryAfter < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(retryAfter), retryAfter, "Retry-After must be zero or more.");
        Enqueue(count, Fault.Throttle(reason, retryAfter));
    }

    /// <summary>The next <paramref name="count"/> invocation requests wait <paramref name="delay"/> (real time), then
    /// are served as usual.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The count is below 1, or the delay is negative or infinite.</exception>
    public void DelayNext(int count, TimeSpan delay)
    {
        if (delay < TimeSpan.Zero || delay == Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(delay), delay, "The delay must be zero or more, and finite.");
        Enqueue(count, Fault.Wait(delay));
    }

    /// <summary>The next <paramref name="count"/> invocation requests get no answer: the connection is aborted
    /// before anything is sent, and the function does not run.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The count is below 1.</exception>
    public void ResetNext(int count) => Enqueue(count, new Fault(FaultKind.Reset));

    /// <summary>The next <paramref name="count"/> invocation requests run as usual, but their answer declares its
    /// full <c>Content-Length</c>, sends only the first half of the body and aborts the connection. An answer without
    /// a body (Event 202, DryRun 204) is aborted before it is sent. The function does run.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The count is below 1.</exception>
    public void TruncateNext(int count) => Enqueue(count, new Fault(FaultKind.Truncate));

    /// <summary>Fails <paramref name="fraction"/> of the invocation requests that no queued fault takes, with
    /// <paramref name="status"/> and <paramref name="errorType"/>. The failures are spread evenly and
    /// deterministically (0.25 fails every fourth request) so that tests repeat; 0 turns it off.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The fraction is not within 0 to 1, or the status is not 400-599.</exception>
    /// <exception cref="ArgumentException">The error type is empty or not a plain name.</exception>
    public void FailFraction(double fraction, int status, string errorType)
    {
        if (!(fraction >= 0 && fraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "The fraction of requests to fail must be within 0 (none) to 1 (all).");
        var fault = Fault.Failure(CheckStatus(status), CheckErrorType(errorType));
        lock (_lock)
        {
            _fraction = fraction;
            _fractionFault = fraction > 0 ? fault : null;
            _accumulated = 0;
            _armed = _queue.Count > 0 || _fractionFault is not null;
        }
    }

    /// <summary>How many invocation requests the queued faults will still take (the fraction not included).</summary>
    public int Pending
    {
        get
        {
            lock (_lock)
            {
                int pending = 0;
                foreach (var fault in _queue) pending += fault.Remaining;
                return pending;
            }
        }
    }

    /// <summary>Removes every queued fault and the failing fraction.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _queue.Clear();
            _fractionFault = null;
            _fraction = _accumulated = 0;
            _armed = false;
        }
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        lock (_lock)
            return $"EmulatorFaults {{ Queued = [{string.Join(", ", _queue)}], FailFraction = {_fraction} }}";
    }

    // The fault for the invocation request that just arrived, or null.
    internal Fault? Next()
    {
        if (!_armed) return null;
        lock (_lock)
        {
            if (_queue.TryPeek(out var head))
            {
                if (--head.Remaining == 0) _queue.Dequeue();
                _armed = _queue.Count > 0 || _fractionFault is not null;
                return head;
            }
            if (_fractionFault is null) return null;
            _accumulated += _fraction;
            if (_accumulated < 1 - 1e-9) return null;
            _accumulated -= 1;
            return _fractionFault;
        }
    }

    private void Enqueue(int count, Fault fault)
    {
        if (count < 1)
            throw new ArgumentOutOfRangeException(nameof(count), count, "The number of requests to apply the fault to must be 1 or more.");
        fault.Remaining = count;
        lock (_lock)
        {
            _queue.Enqueue(fault);
            _armed = true;
        }
    }

    private static int CheckStatus(int status) =>
        status is >= 400 and <= 599 ? status
            : throw new ArgumentOutOfRangeException(nameof(status), status, "An injected failure's HTTP status must be an error, 400 to 599 (e.g. 500, 502, 503).");

    private static string CheckErrorType(string errorType)
    {
        if (string.IsNullOrEmpty(errorType))
            throw new ArgumentException("The error type must not be empty; give an AWS error type such as ServiceException.", nameof(errorType));
        foreach (char c in errorType)
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('.' or '_' or '-'))
                throw new ArgumentException($"The error type '{errorType}' must be a plain name (letters, digits, '.', '_', '-') such as ServiceException.", nameof(errorType));
        return errorType;
    }
}

internal enum FaultKind { Fail, Throttle, Delay, Reset, Truncate }

// One queued fault; everything but Remaining (guarded by the faults' lock) is fixed.
internal sealed class Fault
{
    public Fault(FaultKind kind) => Kind = kind;

    public FaultKind Kind { get; }
    public int Status { get; private init; }
    public string ErrorType { get; private init; } = "";
    public string Reason { get; private init; } = "";
    public TimeSpan? RetryAfter { get; private init; }
    public TimeSpan Delay { get; private init; }
    public int Remaining { get; set; }

    public static Fault Failure(int status, string errorType) => new(FaultKind.Fail) { Status = status, ErrorType = errorType };
    public static Fault Throttle(string reason, TimeSpan? retryAfter) => new(FaultKind.Throttle) { Status = 429, ErrorType = "TooManyRequestsException", Reason = reason, RetryAfter = retryAfter };
    public static Fault Wait(TimeSpan delay) => new(FaultKind.Delay) { Delay = delay };

    public override string ToString() => Kind switch
    {
        FaultKind.Fail => $"Fail {Status} {ErrorType} x{Remaining}",
        FaultKind.Throttle => $"Throttle {Reason} x{Remaining}",
        FaultKind.Delay => $"Delay {Delay} x{Remaining}",
        _ => $"{Kind} x{Remaining}",
    };
}
