from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("trainer", "0014_judge_stored_api_key")]

    operations = [
        migrations.AddField(
            model_name="looppolicy",
            name="reward_source_weights",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Weights of the labels by who gave them in each round's reward model, "
                'e.g. {"ai": 0.5} to count an AI judge\'s labels half as much as people\'s '
                "(sources: human, simulated, ai, imported; unnamed ones weigh 1).",
            ),
        ),
    ]
