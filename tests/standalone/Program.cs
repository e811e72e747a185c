// Signs one request with nothing but SigV4.cs and checks the result against the suite's get-vanilla case.
using System;
using System.Collections.Generic;
using SigV4Lite;

var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
var signature = SigV4.Sign("GET", "/", "", new[] { new KeyValuePair<string, string>("Host", "example.amazonaws.com") },
    SigV4.EmptyPayloadHash, new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero), credentials, new SigV4Options("service", "us-east-1"));
const string expected = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
Console.WriteLine(signature.Signature == expected ? "standalone SigV4.cs signs: ok" : "standalone SigV4.cs signs: WRONG " + signature.Signature);
return signature.Signature == expected ? 0 : 1;
