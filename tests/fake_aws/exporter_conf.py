"""The exporter configuration that points every surface at a running fake AWS
account (tests/fake_aws/fake_aws.py): both seeded regions, STS, Cost Explorer, CloudWatch,
the example budgets, no instance metadata. Used by the demo (tests/demo) and
the real-Prometheus end-to-end test (tests/dashboards)."""


def exporter_conf(fake, state_dir, ce_refresh_interval, ce_extra="", header="",
                  cw_refresh_interval=60):
    """The configuration text. @fake is the fake's base URL ("http://127.0.0.1:PORT"),
    @state_dir where the state file goes, @ce_extra more cost_explorer lines, CloudWatch
    read every @cw_refresh_interval seconds."""
    return f"""{header}projects: {{
  regions = ["us-east-1", "eu-west-1"];
  endpoint = "{fake}/mantle/{{region}}/v1";
  auth = "api_key";
  api_key_env = "BEDROCK_API_KEY";
  refresh_interval = 60;
}};
aws: {{
  sts_endpoint = "{fake}/sts";
  imds_enabled = false;           # never talk to anything but the fake
}};
cost_explorer: {{
  enabled = true;
  endpoint = "{fake}/ce";
  refresh_interval = {ce_refresh_interval};
{ce_extra}}};
cloudwatch: {{
  endpoint = "{fake}/monitoring/{{region}}";
  refresh_interval = {cw_refresh_interval};
}};
budgets = (
  {{ project = "CustomerChatbot-Prod"; monthly_usd = 500.0; }},
  {{ tag = "Team"; value = "DataScience"; monthly_usd = 2000.0; }}
);
state_file = "{state_dir}/state.json";
"""
