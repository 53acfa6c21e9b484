import pytest

from chatbot.analysis import analyze, fold_accents, words


@pytest.mark.parametrize(
    ("accented", "plain"),
    [("été", "ete"), ("français", "francais"), ("développement", "developpement"), ("Numérique", "numerique")],
)
def test_accented_and_unaccented_words_meet(accented: str, plain: str) -> None:
    assert analyze(accented) == analyze(plain)
    assert analyze(accented)  # not dropped


def test_elisions_are_split_off_with_both_apostrophes() -> None:
    assert analyze("l’entreprise") == analyze("l'entreprise") == analyze("entreprise") == ["entrepris"]
    assert analyze("d’influenceurs") == analyze("influenceur") == ["influenceur"]
    assert words("qu’il jusqu’aux n’est s’en c’est") == ["il", "aux", "est", "en", "est"]


def test_words_with_inner_apostrophe_stay_whole() -> None:
    assert words("aujourd’hui") == ["aujourd'hui"]


def test_numbers_and_percentages_are_kept_as_tokens() -> None:
    assert analyze("88% des entreprises") == ["88%", "entrepris"]
    assert analyze("16,5 % en 2015") == ["16,5%", "2015"]
    assert "4,3%" in analyze("Shenzhen consacre 4,3% de son PIB")


def test_stop_words_are_dropped() -> None:
    assert analyze("le la les de des du et ou qui que dans pour") == []


def test_plural_and_singular_share_a_stem() -> None:
    assert analyze("réseaux sociaux") == analyze("réseau social")


def test_fold_accents() -> None:
    assert fold_accents("Élève à l’œuvre") == "Eleve a l’œuvre".replace("œ", "œ")


def test_question_words_carry_no_topic() -> None:
    assert analyze("Combien de start-up ? Pourquoi, comment, quand, quelle part ?") == ["start", "up", "part"]


def test_each_thread_stems_with_its_own_stemmer() -> None:
    import threading

    from chatbot.analysis import _stemmer

    others = []
    thread = threading.Thread(target=lambda: others.append(_stemmer()))
    thread.start()
    thread.join()
    assert _stemmer() is _stemmer()  # made once per thread
    assert others[0] is not _stemmer()  # PyStemmer objects are not thread-safe: never shared
