package org.citysoc.spark;

import org.apache.spark.sql.catalyst.analysis.FunctionRegistry;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.Literal;
import org.apache.spark.sql.catalyst.expressions.objects.Invoke;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.types.AbstractDataType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.LongType;
import org.apache.spark.sql.types.StringType;

import scala.Function1;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * CitySOC's SQL functions over lower-cased text, and the detection window's time test, as Catalyst
 * expressions (no UDF conversion per row):
 *
 * <ul>
 *   <li>{@code citysoc_contains_any(text, 'lit', ...)}: {@code ContainsAny} of {@code lower(text)};
 *   <li>{@code citysoc_multi_contains(text, 'lit', ...)}: the {@code MultiContains} bitmap of
 *       {@code lower(text)};
 *   <li>{@code citysoc_in_lower(text, 'lit', ...)}: {@code lower(text) IN ('lit', ...)};
 *   <li>{@code citysoc_in_window(micros, since, until)}: {@code micros >= since AND micros < until}
 *       ({@link TimeWindow}; a null bound is open), with the bounds out of the generated code.
 * </ul>
 *
 * Each text function is an {@code Invoke} of a {@link FoldedMatch} (a literal object carrying the
 * lower-cased literals) on the text column, so whole-stage codegen calls it with Spark's own {@code
 * UTF8String}; the window test is one of a {@link TimeWindow} on the bigint column. Null input gives
 * null. The literals are string constants, compared with {@code lower(text)} as given (so lower-cased
 * by the caller); only {@code citysoc_in_lower} takes an empty one.
 */
public final class Functions {
    private Functions() {
    }

    /** Registers the functions in the session's function registry (idempotent). */
    public static void register(SparkSession session) {
        FunctionRegistry registry = session.sessionState().functionRegistry();
        register(registry, "citysoc_contains_any", "any", DataTypes.BooleanType);
        register(registry, "citysoc_multi_contains", "bitmap", DataTypes.createArrayType(DataTypes.LongType, false));
        register(registry, "citysoc_in_lower", "in", DataTypes.BooleanType);
        Function1<Seq<Expression>, Expression> window = Functions::window;
        registry.createOrReplaceTempFunction("citysoc_in_window", window, "java_udf");
    }

    static Expression window(Seq<Expression> arguments) {
        java.util.List<Expression> args = CollectionConverters.asJava(arguments);
        if (args.size() != 3) {
            throw new IllegalArgumentException("citysoc_in_window needs micros, since and until");
        }
        Expression micros = args.get(0);
        if (!(micros.dataType() instanceof LongType)) {
            throw new IllegalArgumentException("citysoc_in_window reads a bigint, not " + micros.dataType().simpleString());
        }
        Long[] bounds = new Long[2];
        for (int index = 1; index < 3; index++) {
            Expression bound = args.get(index);
            Object value = bound.foldable() ? bound.eval(null) : null;
            if (!bound.foldable() || (value != null && !(value instanceof Long))) {
                throw new IllegalArgumentException("citysoc_in_window: bound " + index + " must be a bigint constant or null");
            }
            bounds[index - 1] = (Long) value;
        }
        return invoke(new TimeWindow(bounds[0], bounds[1]), "contains", DataTypes.BooleanType, micros);
    }

    /** {@code target.method(input)} in generated code, the target held by reference; null input gives null. */
    private static Expression invoke(Object target, String method, DataType type, Expression input) {
        Seq<Expression> inputs = CollectionConverters.asScala(java.util.List.of(input)).toList();
        Seq<AbstractDataType> noCasts = CollectionConverters.asScala(java.util.List.<AbstractDataType>of()).toList();
        return new Invoke(Literal.fromObject(target), method, type, inputs, noCasts, true, false, true);
    }

    private static void register(FunctionRegistry registry, String name, String kind, DataType type) {
        Function1<Seq<Expression>, Expression> builder = arguments -> build(name, kind, type, arguments);
        registry.createOrReplaceTempFunction(name, builder, "java_udf");
    }

    static Expression build(String name, String kind, DataType type, Seq<Expression> arguments) {
        java.util.List<Expression> args = CollectionConverters.asJava(arguments);
        if (args.size() < 2) {
            throw new IllegalArgumentException(name + " needs a text and at least one literal");
        }
        Expression text = args.get(0);
        if (!(text.dataType() instanceof StringType)) {
            throw new IllegalArgumentException(name + " reads a string, not " + text.dataType().simpleString());
        }
        String[] literals = new String[args.size() - 1];
        for (int index = 1; index < args.size(); index++) {
            Expression literal = args.get(index);
            Object value = literal.foldable() ? literal.eval(null) : null;
            if (value == null || !(literal.dataType() instanceof StringType)) {
                throw new IllegalArgumentException(name + ": literal " + index + " must be a non-null string constant");
            }
            literals[index - 1] = value.toString();
        }
        boolean icu = (Boolean) SQLConf.get().getConf(SQLConf.ICU_CASE_MAPPINGS_ENABLED());
        return invoke(new FoldedMatch(kind, literals, icu), kind, type, text);
    }
}
