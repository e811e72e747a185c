using System;

namespace SigV4Lite.Emulator;

// The FunctionName path parameter, already percent-decoded, in any of Lambda's forms: my-function,
// my-function:qualifier, arn:aws:lambda:us-east-1:123456789012:function:my-function[:qualifier], and the partial ARN
// 123456789012:function:my-function[:qualifier].
internal readonly struct FunctionName
{
    public const string Latest = "$LATEST";
    private const int MaxNameLength = 64;
    private const int MaxQualifierLength = 128;

    private FunctionName(string name, string? qualifier, string? region, string? account)
    {
        Name = name;
        Qualifier = qualifier;
        Region = region;
        Account = account;
    }

    public string Name { get; }
    public string? Qualifier { get; }
    public string? Region { get; }   // from a full ARN
    public string? Account { get; }  // from a full or partial ARN

    public static bool TryParse(string text, out FunctionName result)
    {
        result = default;
        string[] parts = text.Split(':');
        if (parts[0] == "arn")
        {
            // arn:partition:lambda:region:account:function:name[:qualifier]
            if (parts.Length is not (7 or 8) || !parts[1].StartsWith("aws", StringComparison.Ordinal) || parts[2] != "lambda"
                || !IsRegion(parts[3]) || !IsAccount(parts[4]) || parts[5] != "function")
                return false;
            return TryBuild(parts[6], parts.Length == 8 ? parts[7] : null, parts[3], parts[4], out result);
        }
        if (parts.Length is 3 or 4 && parts[1] == "function")
        {
            if (!IsAccount(parts[0])) return false;
            return TryBuild(parts[2], parts.Length == 4 ? parts[3] : null, null, parts[0], out result);
        }
        if (parts.Length > 2) return false;
        return TryBuild(parts[0], parts.Length == 2 ? parts[1] : null, null, null, out result);
    }

    // A name a function can be created with: 1 to 64 letters, digits, '-' or '_'.
    public static bool IsCreatableName(string text) => text.Length is > 0 and <= MaxNameLength && IsNameChars(text);

    public static bool IsQualifier(string text) =>
        text == Latest || (text.Length is > 0 and <= MaxQualifierLength && IsNameChars(text));

    // AWS's pattern for the parameter, quoted in its validation message.
    public const string Pattern =
        @"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?";

    private static bool TryBuild(string name, string? qualifier, string? region, string? account, out FunctionName result)
    {
        result = default;
        // AWS's Invoke pattern lets '.' through (such a function cannot exist, so it is simply not found).
        if (name.Length is 0 or > MaxNameLength || !IsNameChars(name, allowDot: true)) return false;
        if (qualifier is not null && !IsQualifier(qualifier)) return false;
        result = new FunctionName(name, qualifier, region, account);
        return true;
    }

    private static bool IsNameChars(string text, bool allowDot = false)
    {
        foreach (char c in text)
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_') && !(allowDot && c == '.'))
                return false;
        return true;
    }

    private static bool IsAccount(string text)
    {
        if (text.Length != 12) return false;
        foreach (char c in text)
            if (!char.IsAsciiDigit(c)) return false;
        return true;
    }

    private static bool IsRegion(string text)
    {
        if (text.Length == 0) return false;
        foreach (char c in text)
            if (!char.IsAsciiLetterLower(c) && !char.IsAsciiDigit(c) && c != '-') return false;
        return true;
    }
}
