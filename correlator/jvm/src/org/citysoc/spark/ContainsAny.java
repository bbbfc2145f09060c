package org.citysoc.spark;

import org.apache.spark.sql.api.java.UDF1;

/**
 * Whether any of a fixed list of literals occurs in a string (null for a null text): the same
 * Aho-Corasick automaton as {@link MultiContains}, stopping at the first literal found. Used as a
 * prefilter, so {@code MultiContains} runs only on the rows where something can match.
 */
public final class ContainsAny implements UDF1<String, Boolean> {
    private static final long serialVersionUID = 1L;

    private final String[] literals;
    private transient MultiContains.Automaton automaton;

    public ContainsAny(String[] literals) {
        this.literals = MultiContains.checked(literals);
    }

    @Override
    public Boolean call(String text) {
        if (text == null) {
            return null;
        }
        MultiContains.Automaton machine = automaton;
        if (machine == null) {
            machine = MultiContains.automaton(literals);
            automaton = machine;
        }
        return machine.any(text);
    }
}
