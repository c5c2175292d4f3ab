"""A small medical-domain data set for the trainer tests, spoken by espeak-ng.

TRAINING_TEXT and TEST_SENTENCES share domain words and phrases but no test sentence appears
in the training text, so a better test WER comes from generalisation, not memorisation.
TUNING_SENTENCES are for audio+transcript training pairs (decoder-weight tuning).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

TRAINING_TEXT = """\
The patient was started on metoprolol twenty five milligrams twice daily.
Continue lisinopril ten milligrams once daily for hypertension.
The echocardiogram showed normal left ventricular function.
Heart rate was controlled with metoprolol.
Blood pressure remains elevated despite lisinopril.
Start atorvastatin forty milligrams at bedtime.
The patient has atrial fibrillation with rapid ventricular response.
Warfarin was held because of bleeding.
Oxygen saturation was ninety four percent on room air.
Chest x-ray shows right lower lobe pneumonia.
Begin amoxicillin five hundred milligrams three times daily.
A heparin drip was started for the pulmonary embolism.
Metformin was continued for type two diabetes.
The electrocardiogram showed sinus tachycardia.
Check a basic metabolic panel in the morning.
Increase the metoprolol dose for persistent tachycardia.
The patient denies chest pain or shortness of breath.
Hold warfarin and check the international normalized ratio.
Follow up echocardiogram in three months.
Blood cultures were drawn before antibiotics.
The patient was admitted with community acquired pneumonia.
Oxygen saturation improved on two liters nasal cannula.
Continue heparin until the warfarin is therapeutic.
The electrocardiogram showed new atrial fibrillation.
Blood pressure was one hundred forty over ninety.
Start metformin five hundred milligrams twice daily with meals.
The patient has a history of hypertension and diabetes.
Lisinopril was held for low blood pressure.
Chest x-ray shows no acute pneumonia.
The echocardiogram showed mild mitral regurgitation.
Atorvastatin was continued for high cholesterol.
Heart rate was one hundred twenty in atrial fibrillation.
Give amoxicillin for the ear infection.
The patient will follow up in the cardiology clinic.
Metoprolol was held for bradycardia.
Continue atorvastatin and aspirin daily.
Repeat the chest x-ray in the morning.
The pulmonary embolism was confirmed on computed tomography.
Oxygen saturation dropped during the night.
The patient tolerated the procedure well.
"""

TEST_SENTENCES = [
    "The patient was started on lisinopril for hypertension.",
    "Continue metoprolol twenty five milligrams twice daily.",
    "The electrocardiogram showed atrial fibrillation.",
    "Oxygen saturation was ninety percent on room air.",
    "Start heparin for the pulmonary embolism.",
    "Chest x-ray shows left lower lobe pneumonia.",
    "Hold metformin before the procedure.",
    "Blood pressure was controlled with lisinopril.",
    "Begin atorvastatin forty milligrams once daily.",
    "The echocardiogram showed normal heart function.",
]

TUNING_SENTENCES = [
    "Increase the lisinopril dose for persistent hypertension.",
    "The patient was started on warfarin for atrial fibrillation.",
    "Heart rate improved after metoprolol.",
]

# Spoken adaptation pairs (acoustic-model adaptation): none is in TRAINING_TEXT or TEST_SENTENCES.
ADAPTATION_SENTENCES = [
    "Increase the lisinopril dose for persistent hypertension.",
    "The patient was started on warfarin for atrial fibrillation.",
    "Heart rate improved after metoprolol.",
    "Repeat the blood cultures in the morning.",
    "The chest x-ray showed a small pleural effusion.",
    "Continue amoxicillin for seven more days.",
    "The patient reports mild shortness of breath.",
    "Check the international normalized ratio tomorrow.",
    "Metformin was held before the contrast study.",
    "The electrocardiogram showed a normal sinus rhythm.",
    "Oxygen saturation improved on nasal cannula.",
    "Start heparin and monitor the platelet count.",
    "The patient denies fever or chills.",
    "Atorvastatin was increased to eighty milligrams.",
    "Blood pressure was controlled on the current regimen.",
    "The echocardiogram showed a reduced ejection fraction.",
    "The patient was transferred to the cardiology unit.",
    "Hold metoprolol for a heart rate below fifty.",
    "Follow up with the primary care physician in two weeks.",
    "The pneumonia is improving on antibiotics.",
    "Check a lipid panel at the next visit.",
    "The patient has chronic kidney disease.",
    "Start aspirin eighty one milligrams daily.",
    "The pulmonary embolism was treated with heparin.",
    "Monitor blood glucose before each meal.",
    "The patient was discharged home in stable condition.",
    "Continue warfarin with a goal ratio of two to three.",
    "The chest pain resolved after nitroglycerin.",
]


VOICES = ("en-us+m3", "en-us+f2", "en-us+m1", "en-us+f3")
SPEEDS = (150, 165, 140)


def speak(text: str, path: Path, voice: str, speed: int = 155) -> Path:
    """Write ``text`` spoken by espeak-ng as 16 kHz mono 16-bit WAV at ``path``.

    sox dithers (a noise floor, as real recordings have; PocketSphinx decodes digital silence
    badly) in repeatable mode (-R), so the same text always gives the same file.
    """
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["sox", "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True)
    raw.unlink()
    return path


def speak_all(sentences: list[str], directory: Path, prefix: str) -> list[Path]:
    """Speak each sentence with a rotating voice and speed; return the WAV paths."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        speak(s, directory / f"{prefix}{i:02d}.wav", VOICES[i % len(VOICES)], SPEEDS[i % len(SPEEDS)])
        for i, s in enumerate(sentences)
    ]
