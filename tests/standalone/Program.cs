// Signs one request with nothing but SigV4.cs (or every library file) and checks the result against the suite's
// get-vanilla case, and that the types stayed internal.
using System;
using System.Collections.Generic;
using SigV4Lite;

var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
var signature = SigV4.Sign("GET", "/", "", new[] { new KeyValuePair<string, string>("Host", "example.amazonaws.com") },
    SigV4.EmptyPayloadHash, new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero), credentials, new SigV4Options("service", "us-east-1"));
const string expected = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
Console.WriteLine(signature.Signature == expected ? "standalone SigV4.cs signs: ok" : "standalone SigV4.cs signs: WRONG " + signature.Signature);
// Compiled without SIGV4LITE_PUBLIC, as a copy or a source package compiles them, the files' types are internal.
bool leaks = typeof(AwsCredentials).IsPublic || typeof(SigV4).IsPublic;
Console.WriteLine(leaks ? "types compiled into this assembly are public: WRONG" : "types compiled into this assembly are internal: ok");
return signature.Signature == expected && !leaks ? 0 : 1;
