using System;

namespace SigV4Lite.Emulator;

/// <summary>
/// Thrown by a <see cref="LambdaFunctionHandler"/> to answer a handled function error: one the function caught and
/// returned through its runtime (as Node's <c>callback(error)</c> does). The caller gets HTTP 200 with
/// <c>X-Amz-Function-Error: Handled</c> and the body <c>{"errorMessage","errorType","stackTrace":[]}</c>.
/// Any other exception a function throws is an <c>Unhandled</c> function error.
/// </summary>
public sealed class LambdaHandledErrorException : Exception
{
    /// <summary>Creates the error the function returns.</summary>
    /// <param name="errorType">The body's <c>errorType</c>, such as <c>ValidationError</c>.</param>
    /// <param name="errorMessage">The body's <c>errorMessage</c>, also this exception's <see cref="Exception.Message"/>.</param>
    /// <exception cref="ArgumentException">The error type is empty.</exception>
    public LambdaHandledErrorException(string errorType, string errorMessage) : base(errorMessage ?? throw new ArgumentNullException(nameof(errorMessage)))
    {
        ArgumentNullException.ThrowIfNull(errorType);
        if (errorType.Length == 0)
            throw new ArgumentException("The error type must not be empty: give the errorType the caller sees, such as ValidationError.", nameof(errorType));
        ErrorType = errorType;
    }

    /// <summary>The body's <c>errorType</c>.</summary>
    public string ErrorType { get; }

    /// <summary>The body's <c>errorMessage</c>.</summary>
    public string ErrorMessage => Message;
}
