using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;

namespace SigV4Lite.Tests;

/// <summary>
/// Writes the public surface of an assembly as C#-like declarations in a fixed order, one per line: every public type, and each
/// public or protected member with its modifiers, nullable annotations and default values. Two assemblies with the
/// same text have the same API for a caller. Reflection is fine here: this is the test project, not the library.
/// </summary>
public static class PublicApi
{
    public static string Describe(Assembly assembly)
    {
        var text = new StringBuilder();
        foreach (var type in assembly.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            text.Append(TypeDeclaration(type)).Append('\n');
            foreach (var member in Members(type)) text.Append("    ").Append(member).Append('\n');
        }
        return text.ToString();
    }

    private const BindingFlags Declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static readonly NullabilityInfoContext Nullability = new();

    private static string TypeDeclaration(Type type)
    {
        var text = new StringBuilder(type.IsNested ? (type.IsNestedFamily || type.IsNestedFamORAssem ? "protected " : "public ") : "public ");
        if (type.GetCustomAttribute<FlagsAttribute>() is not null) text.Insert(0, "[Flags] ");
        if (type.GetCustomAttribute<ObsoleteAttribute>() is { } obsolete) text.Insert(0, $"[Obsolete(\"{obsolete.Message}\")] ");
        if (type.IsEnum) return text.Append($"enum {Name(type)} : {Name(Enum.GetUnderlyingType(type))}").ToString();
        if (type.IsSubclassOf(typeof(Delegate)))
        {
            var invoke = type.GetMethod("Invoke")!;
            return text.Append($"delegate {ReturnType(invoke)} {Name(type)}({Parameters(invoke)})").ToString();
        }
        if (type.IsInterface) text.Append("interface ");
        else if (type.IsValueType) text.Append(type.IsDefined(typeof(IsReadOnlyAttribute)) ? "readonly struct " : "struct ");
        else
        {
            text.Append(type.IsAbstract && type.IsSealed ? "static " : type.IsAbstract ? "abstract " : type.IsSealed ? "sealed " : "");
            text.Append(type.GetMethod("<Clone>$") is null ? "class " : "record ");
        }
        text.Append(Name(type)).Append(Constraints(type.IsGenericTypeDefinition ? type.GetGenericArguments() : []));
        var bases = new List<string>();
        if (type.BaseType is { } baseType && baseType != typeof(object) && baseType != typeof(ValueType)) bases.Add(Name(baseType));
        bases.AddRange(type.GetInterfaces().Select(i => Name(i)).Order(StringComparer.Ordinal));
        return bases.Count == 0 ? text.ToString() : text.Append(" : ").AppendJoin(", ", bases).ToString();
    }

    // Members in a fixed order: constructors, properties, fields, events, methods, each by name, then overloads by text.
    private static IEnumerable<string> Members(Type type) => MemberDeclarations(type)
        .OrderBy(m => m.Rank).ThenBy(m => m.Name, StringComparer.Ordinal).ThenBy(m => m.Text, StringComparer.Ordinal)
        .Select(m => m.Text);

    private static IEnumerable<(int Rank, string Name, string Text)> MemberDeclarations(Type type)
    {
        if (type.IsEnum)
        {
            var fields = type.GetFields(BindingFlags.Public | BindingFlags.Static).OrderBy(f => Convert.ToDecimal(f.GetRawConstantValue(), CultureInfo.InvariantCulture));
            foreach (var (field, i) in fields.Select((f, i) => (f, i)))
                yield return (2, i.ToString("D6", CultureInfo.InvariantCulture), $"{field.Name} = {Convert.ToString(field.GetRawConstantValue(), CultureInfo.InvariantCulture)}");
            yield break;
        }
        if (type.IsSubclassOf(typeof(Delegate))) yield break;
        foreach (var constructor in type.GetConstructors(Declared).Where(c => Visible(c) && !c.IsStatic))
            yield return (0, "", $"{Access(constructor)}{Name(type, withArguments: false)}({Parameters(constructor)})");
        foreach (var property in type.GetProperties(Declared))
            if (Property(property) is { } declaration) yield return (1, property.Name, declaration);
        foreach (var field in type.GetFields(Declared).Where(f => Visible(f) && Speakable(f.Name)))
            yield return (2, field.Name, Field(field));
        foreach (var @event in type.GetEvents(Declared).Where(e => e.AddMethod is { } add && Visible(add)))
            yield return (3, @event.Name, $"{Access(@event.AddMethod!)}{Modifiers(@event.AddMethod!)}event {TypeName(@event.EventHandlerType!, Nullability.Create(@event), TupleNames(@event))} {@event.Name}");
        foreach (var method in type.GetMethods(Declared).Where(m => Visible(m) && !m.IsSpecialName || IsOperator(m)))
            if (Speakable(method.Name)) yield return (4, method.Name, Method(method));
    }

    private static bool Visible(MethodBase method) => method.IsPublic || method.IsFamily || method.IsFamilyOrAssembly;

    private static bool Visible(FieldInfo field) => field.IsPublic || field.IsFamily || field.IsFamilyOrAssembly;

    private static bool IsOperator(MethodInfo method) => method.IsSpecialName && method.IsPublic && method.Name.StartsWith("op_", StringComparison.Ordinal);

    // Compiler-made members (<Clone>$, backing fields) are not callable by name.
    private static bool Speakable(string name) => !name.Contains('<');

    private static string Access(MethodBase method) => method.IsPublic ? "public " : "protected ";

    private static string Modifiers(MethodInfo method)
    {
        if (method.DeclaringType!.IsInterface) return method.IsStatic ? "static " : "";
        if (method.IsStatic) return "static ";
        bool overrides = method.GetBaseDefinition().DeclaringType != method.DeclaringType;
        if (overrides) return method.IsFinal ? "sealed override " : "override ";
        if (method.IsAbstract) return "abstract ";
        return method.IsVirtual && !method.IsFinal ? "virtual " : "";
    }

    private static readonly Dictionary<string, string> Operators = new()
    {
        ["op_Equality"] = "==", ["op_Inequality"] = "!=", ["op_Implicit"] = "implicit", ["op_Explicit"] = "explicit",
        ["op_LessThan"] = "<", ["op_GreaterThan"] = ">", ["op_LessThanOrEqual"] = "<=", ["op_GreaterThanOrEqual"] = ">=",
    };

    private static string Method(MethodInfo method)
    {
        string generic = method.IsGenericMethodDefinition ? "<" + string.Join(", ", method.GetGenericArguments().Select(a => a.Name)) + ">" : "";
        string constraints = method.IsGenericMethodDefinition ? Constraints(method.GetGenericArguments()) : "";
        string name = IsOperator(method) ? "operator " + Operators.GetValueOrDefault(method.Name, method.Name) : method.Name;
        return $"{Access(method)}{Modifiers(method)}{ReturnType(method)} {name}{generic}({Parameters(method)}){constraints}";
    }

    private static string? Property(PropertyInfo property)
    {
        var accessors = new[] { property.GetMethod, property.SetMethod }.Where(a => a is not null && Visible(a)).ToList();
        if (accessors.Count == 0) return null;
        var first = accessors[0]!;
        var text = new StringBuilder().Append(Access(first)).Append(Modifiers(first));
        text.Append(TypeName(property.PropertyType, Nullability.Create(property), TupleNames(property))).Append(' ');
        var index = property.GetIndexParameters();
        text.Append(index.Length == 0 ? property.Name : $"this[{Parameters(property.GetMethod ?? property.SetMethod!, index)}]").Append(" {");
        if (property.GetMethod is { } get && Visible(get)) text.Append(get.IsPublic || !first.IsPublic ? " get;" : " protected get;");
        if (property.SetMethod is { } set && Visible(set))
        {
            bool init = set.ReturnParameter.GetRequiredCustomModifiers().Contains(typeof(IsExternalInit));
            text.Append(set.IsPublic || !first.IsPublic ? "" : " protected").Append(init ? " init;" : " set;");
        }
        return text.Append(" }").ToString();
    }

    private static string Field(FieldInfo field)
    {
        string type = TypeName(field.FieldType, Nullability.Create(field), TupleNames(field));
        string access = field.IsPublic ? "public " : "protected ";
        if (field.IsLiteral) return $"{access}const {type} {field.Name} = {Literal(field.GetRawConstantValue(), field.FieldType)}";
        return $"{access}{(field.IsStatic ? "static " : "")}{(field.IsInitOnly ? "readonly " : "")}{type} {field.Name}";
    }

    private static string ReturnType(MethodInfo method) => TypeName(method.ReturnType, Nullability.Create(method.ReturnParameter), TupleNames(method.ReturnParameter));

    private static string Parameters(MethodBase method, ParameterInfo[]? parameters = null) =>
        string.Join(", ", (parameters ?? method.GetParameters()).Select(Parameter));

    private static string Parameter(ParameterInfo parameter)
    {
        var text = new StringBuilder();
        if (parameter.IsDefined(typeof(ParamArrayAttribute))) text.Append("params ");
        Type type = parameter.ParameterType;
        if (type.IsByRef)
        {
            text.Append(parameter.IsOut ? "out " : parameter.IsIn ? "in " : "ref ");
            type = type.GetElementType()!;
        }
        text.Append(TypeName(type, Nullability.Create(parameter), TupleNames(parameter))).Append(' ').Append(parameter.Name);
        if (parameter.HasDefaultValue) text.Append(" = ").Append(Literal(parameter.RawDefaultValue, type));
        return text.ToString();
    }

    private static string Literal(object? value, Type type) => value switch
    {
        null => type.IsValueType && Nullable.GetUnderlyingType(type) is null ? "default" : "null",
        string s => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"",
        bool b => b ? "true" : "false",
        char c => $"'{c}'",
        _ when (Nullable.GetUnderlyingType(type) ?? type).IsEnum => EnumLiteral(Nullable.GetUnderlyingType(type) ?? type, value),
        IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static string EnumLiteral(Type type, object value) =>
        Enum.GetName(type, Enum.ToObject(type, value)) is { } name ? $"{Name(type)}.{name}" : $"({Name(type)}){value}";

    private static string Constraints(Type[] arguments)
    {
        var text = new StringBuilder();
        foreach (var argument in arguments)
        {
            var constraints = new List<string>();
            var attributes = argument.GenericParameterAttributes;
            if (attributes.HasFlag(GenericParameterAttributes.NotNullableValueTypeConstraint)) constraints.Add("struct");
            else if (attributes.HasFlag(GenericParameterAttributes.ReferenceTypeConstraint)) constraints.Add("class");
            constraints.AddRange(argument.GetGenericParameterConstraints().Where(c => c != typeof(ValueType)).Select(c => Name(c)));
            if (attributes.HasFlag(GenericParameterAttributes.DefaultConstructorConstraint) && !attributes.HasFlag(GenericParameterAttributes.NotNullableValueTypeConstraint))
                constraints.Add("new()");
            if (constraints.Count > 0) text.Append($" where {argument.Name} : ").AppendJoin(", ", constraints);
        }
        return text.ToString();
    }

    // The element names of the tuples in a member's type, in the compiler's order (depth first, a tuple's own names
    // before those of the tuples inside it).
    private static Queue<string?>? TupleNames(ICustomAttributeProvider member) =>
        member.GetCustomAttributes(typeof(TupleElementNamesAttribute), false) is [TupleElementNamesAttribute names, ..] ? new(names.TransformNames) : null;

    // A type as written in C#, with the nullable annotations of its use (reference types) and tuple element names
    // where they are known.
    private static string TypeName(Type type, NullabilityInfo? nullability, Queue<string?>? tupleNames = null)
    {
        if (Nullable.GetUnderlyingType(type) is { } underlying)
            return TypeName(underlying, nullability?.GenericTypeArguments.FirstOrDefault(), tupleNames) + "?";
        string mark = !type.IsValueType && nullability?.ReadState == NullabilityState.Nullable ? "?" : "";
        if (type.IsArray) return TypeName(type.GetElementType()!, nullability?.ElementType, tupleNames) + "[" + new string(',', type.GetArrayRank() - 1) + "]" + mark;
        if (!type.IsGenericType || type.IsGenericTypeDefinition) return Name(type) + mark;
        var arguments = type.GetGenericArguments();
        bool tuple = type.FullName?.StartsWith("System.ValueTuple`", StringComparison.Ordinal) == true;
        var elementNames = arguments.Select(_ => tuple && tupleNames is { Count: > 0 } ? tupleNames.Dequeue() : null).ToList();
        var infos = nullability?.GenericTypeArguments;
        var names = arguments.Select((a, i) => TypeName(a, infos is { Length: > 0 } && i < infos.Length ? infos[i] : null, tupleNames)
            + (elementNames[i] is { } element ? " " + element : "")).ToList();
        if (tuple) return "(" + string.Join(", ", names) + ")" + mark;
        return Name(type, withArguments: false) + "<" + string.Join(", ", names) + ">" + mark;
    }

    private static readonly Dictionary<Type, string> Keywords = new()
    {
        [typeof(void)] = "void", [typeof(object)] = "object", [typeof(string)] = "string", [typeof(bool)] = "bool",
        [typeof(byte)] = "byte", [typeof(sbyte)] = "sbyte", [typeof(char)] = "char", [typeof(short)] = "short",
        [typeof(ushort)] = "ushort", [typeof(int)] = "int", [typeof(uint)] = "uint", [typeof(long)] = "long",
        [typeof(ulong)] = "ulong", [typeof(float)] = "float", [typeof(double)] = "double", [typeof(decimal)] = "decimal",
        [typeof(nint)] = "nint", [typeof(nuint)] = "nuint",
    };

    // Names without namespaces: the library's types are all in SigV4Lite and the BCL's are unambiguous by name.
    private static string Name(Type type, bool withArguments = true)
    {
        if (Keywords.TryGetValue(type, out var keyword)) return keyword;
        if (type.IsGenericParameter) return type.Name;
        string name = type.Name;
        int tick = name.IndexOf('`', StringComparison.Ordinal);
        if (tick >= 0) name = name[..tick];
        if (type.IsNested && !type.IsGenericParameter) name = Name(type.DeclaringType!, withArguments: false) + "." + name;
        if (!withArguments || !type.IsGenericType) return name;
        // Only the type's own arguments: a nested type's outer arguments are the outer type's.
        int inherited = type.IsNested ? type.DeclaringType!.GetGenericArguments().Length : 0;
        var own = type.GetGenericArguments().Skip(inherited).Select(a => TypeName(a, null)).ToList();
        return own.Count == 0 ? name : name + "<" + string.Join(", ", own) + ">";
    }
}
