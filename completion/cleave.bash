# bash completion for cleave(1): the commands, each command's options, and
# the service and table names of the configuration given with -c.
#
# Every word comes from the cleave being completed (the first word of the
# line): `cleave --commands`, `cleave --options COMMAND` and `cleave check
# -c FILE --services | --tables [--service S]`, so the completion offers
# what that binary takes and reads the configuration as it does. Installed
# into bash-completion's directory, where bash-completion loads it on the
# first <TAB> after `cleave`; or source it from ~/.bashrc.

# Whether option $1 takes a value: -c, -s, or listed ending in '='.
_cleave_takes_value()
{
    [[ $1 == -[cs] || $'\n'$options$'\n' == *$'\n'$1=$'\n'* ]]
}

# The command line so far, as the scan found it: the configuration, the
# service named (SERVICE or --service), the arguments that are not options,
# the options given (each is taken once).
_cleave_scan()
{
    local i w opt
    for ((i = 2; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        --*=*) opt=${w%%=*} w=${w#*=} ;;
        -c?* | -s?*) opt=${w:0:2} w=${w:2} ;;
        -*)
            opt=$w w=
            # Its value follows: as the next word, or after a lone '=' where
            # bash split --config=FILE (COMP_WORDBREAKS).
            if _cleave_takes_value "$opt"; then
                [[ ${COMP_WORDS[i + 1]-} == = ]] && ((i++))
                ((i + 1 < COMP_CWORD)) && w=${COMP_WORDS[++i]}
            fi
            ;;
        *) opt='' positional+=("$w") ;;
        esac
        case $opt in
        -c | --config) config=$w opt=--config ;;
        -s) opt=--socket ;;
        --service) service=$w ;;
        esac
        [[ -n $opt ]] && given+=" $opt "
    done
    [[ -z $service && $options == *SERVICE* ]] && service=${positional[0]-}
    [[ $config == \~/* ]] && config=$HOME/${config:2}  # as the shell would
}

# What `check -c FILE` lists (--services, or --tables [--service S]).
_cleave_names()
{
    [[ -n $config ]] || return
    "$bin" check -c "$config" "$@" 2>/dev/null
}

# COMPREPLY: those of the words (one a line) that start with what is
# typed, quoted for the shell: a table may be sales."Order Items". Not
# compgen -W, which would take the quotes out.
_cleave_offer()
{
    local w q
    while IFS= read -r w; do
        printf -v q '%q' "$w"
        [[ -n $w && ($q == "$cur"* || $w == "$cur"*) ]] && COMPREPLY+=("$q")
    done <<<"$1"
}

_cleave()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local bin=${COMP_WORDS[0]} cmd=${COMP_WORDS[1]-} words=
    local options config='' service='' positional=() given='' o
    COMPREPLY=()
    [[ $bin == \~/* ]] && bin=$HOME/${bin:2}
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]] && ((COMP_CWORD > 2)); then
        prev=${COMP_WORDS[COMP_CWORD - 2]}
    fi
    if ((COMP_CWORD == 1)); then
        [[ $cur == -* ]] && words=$'--help\n--version' ||
            words=$("$bin" --commands 2>/dev/null)
        _cleave_offer "$words"
        return
    fi
    options=$("$bin" --options "$cmd" 2>/dev/null) || return
    _cleave_scan
    # The value of the option before the cursor.
    if _cleave_takes_value "$prev"; then
        case $prev in
        --service) words=$(_cleave_names --services) ;;
        --table) words=$(_cleave_names --tables ${service:+--service "$service"}) ;;
        --lag-limit | --lock-timeout | --pause-budget) return ;;  # a number
        *)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
        esac
    elif [[ $cur != -* && $options == *SERVICE* && ${#positional[@]} -eq 0 ]]; then
        words=$(_cleave_names --services)
    else
        for o in ${options//=/}; do
            [[ $o == -* && $given != *" $o "* ]] && words+=$'\n'$o
        done
    fi
    _cleave_offer "$words"
}

complete -F _cleave cleave
